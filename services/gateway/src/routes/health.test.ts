/**
 * The gateway's probes through `app.inject`: liveness, readiness over its real Redis and blob folder
 * (and its answer while the blob folder is gone), the Prometheus text, and the problem answer of an
 * unknown route. Redis outages are the black-box tier's (tests/faults.test.ts).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { sharedGateway, type TestGateway } from '../test-helper.js';

describe('gateway probes (inject)', { timeout: 30_000 }, () => {
  let gw: TestGateway;
  before(async () => {
    gw = await sharedGateway();
  });

  it('GET /healthz answers ok', async () => {
    const res = await gw.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
  });

  it('GET /readyz checks Redis and the blob store', async () => {
    const res = await gw.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok', checks: { redis: { ok: true }, blobs: { ok: true } } });
  });

  it('GET /metrics is Prometheus text that counts requests by route and status', async () => {
    await gw.app.inject({ method: 'GET', url: '/healthz' });
    const res = await gw.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /^text\/plain/);
    assert.match(res.body, /^http_requests_total\{method="GET",route="\/healthz",status="200",service="gateway"\} [1-9]/m);
    assert.match(res.body, /^# TYPE http_request_duration_seconds histogram$/m);
  });

  it('an unknown route is a 404 problem document', async () => {
    const res = await gw.app.inject({ method: 'GET', url: '/api/v1/nothing-here?x=1' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.deepEqual(res.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'No route for GET /api/v1/nothing-here' });
  });

  it('GET /readyz answers 503 naming the blob store while its folder is gone, and ok once it is back', async () => {
    const objects = join(gw.config.dataDir, 'blobs', 'objects');
    await rename(objects, `${objects}.away`);
    try {
      const res = await gw.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.deepEqual(res.json(), {
        type: 'about:blank',
        title: 'Service Unavailable',
        status: 503,
        detail: 'A dependency is not ready',
        checks: { redis: { ok: true }, blobs: { ok: false, error: 'The blob folder is not accessible' } },
      });
      assert.equal((await gw.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still alive');
    } finally {
      await rename(`${objects}.away`, objects);
    }
    assert.equal((await gw.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  });
});
