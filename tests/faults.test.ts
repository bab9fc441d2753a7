/**
 * Faults against the real stack: Redis or the S3 server stopped while the server runs (503 within
 * about two seconds, each naming what is down, then full service again without a restart), the
 * catalog as its own service stopped or cut from Redis, and a server killed mid-upload (its
 * leftovers swept on the next start).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildCatalog } from '@nondivy/catalog';
import { loadCatalogConfig, loadGatewayConfig } from '@nondivy/config';
import { buildGateway, createGatewayDeps } from '@nondivy/gateway';
import { createLogger } from '@nondivy/log';
import { createRedis, waitForRedis, type Redis } from '@nondivy/state';
import type { FastifyInstance } from 'fastify';
import { bearer, listenOnLoopback, login, rawRequest, upload } from './helpers/http.js';
import { startRedis, startS3, tempDir, type TestRedis, type TestS3 } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A 503 problem document's detail: what the client is told is down. */
async function detail503(res: Response | Promise<Response>): Promise<string> {
  const r = await res;
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  return ((await r.json()) as { detail: string }).detail;
}
const DATABASE_DOWN = 'The database is unavailable';
const BLOBS_DOWN = 'The blob store is unavailable';

/** Polls `probe` until it returns true or `ms` pass; returns the time it took. */
async function within(ms: number, probe: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await probe().catch(() => false)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`condition not met within ${ms} ms`);
}

describe('dependencies that go away and come back (s3 driver)', () => {
  let redis: TestRedis;
  let s3: TestS3;
  let server: TestServer;
  let data: { path: string; cleanup(): void };
  let token: string;
  let itemId: string;
  const bytes = randomBytes(2 * MiB + 5);

  before(async () => {
    [redis, s3] = await Promise.all([startRedis(), startS3()]);
    data = tempDir();
    server = await startServer({
      REDIS_URL: redis.url,
      NONDIVY_DATA_DIR: data.path,
      NONDIVY_ADMIN_PASSWORD: 'admin-password',
      NONDIVY_BLOB_DRIVER: 's3',
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY: s3.accessKey,
      S3_SECRET_KEY: s3.secretKey,
      S3_BUCKET: s3.bucket,
      NONDIVY_UPLOAD_LEASE_SECONDS: '2',
    });
    token = await login(server.api, 'admin', 'admin-password');
    const res = await upload(server.api, token, bytes, 'kept.bin');
    assert.equal(res.status, 201);
    itemId = ((await res.json()) as { id: string }).id;
  });

  after(async () => {
    await server?.stop();
    await Promise.all([redis?.close(), s3?.close()]);
    data?.cleanup();
  });

  it('answers 503 problem+json within ~2 s while Redis is down, then recovers by itself', async () => {
    await redis.stop();
    const t0 = Date.now();
    const res = await fetch(`${server.api}/library/${itemId}`);
    const elapsed = Date.now() - t0;
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.ok(elapsed < 2500, `answered in ${elapsed} ms`);
    const text = await res.text();
    assert.ok(!/redis:\/\/|127\.0\.0\.1|ECONNREFUSED/.test(text), 'no internal details');
    assert.equal((JSON.parse(text) as { detail: string }).detail, DATABASE_DOWN);
    const t1 = Date.now();
    // Every 503 names the database, and none claims that uploads or downloads still work.
    assert.equal(await detail503(fetch(`${server.api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"username":"admin","password":"admin-password"}' })), DATABASE_DOWN);
    assert.equal(await detail503(upload(server.api, token, Buffer.from('x'), 'x.bin')), DATABASE_DOWN);
    assert.equal(await detail503(fetch(`${server.api}/library/${itemId}/content`)), DATABASE_DOWN);
    assert.equal(await detail503(fetch(`${server.api}/library?q=kept`)), DATABASE_DOWN);
    assert.ok(Date.now() - t1 < 5000);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'alive, just not ready');
    assert.ok(server.logs.some((l) => l.msg === 'redis connection lost'), 'the outage is logged');

    await redis.start();
    await within(5000, async () => (await fetch(`${server.url}/readyz`)).status === 200);
    const back = await fetch(`${server.api}/library/${itemId}/content`);
    assert.equal(back.status, 200);
    assert.equal(sha(Buffer.from(await back.arrayBuffer())), sha(bytes));
    assert.equal((await upload(server.api, token, Buffer.from('after redis'), 'y.bin')).status, 201);
  });

  it('answers 503 within ~2 s while the S3 server is down, keeps nothing, then recovers by itself', async () => {
    const items = Number(redis.cli('zcard', 'nd:items:created'));
    await s3.stop();
    const t0 = Date.now();
    assert.equal(await detail503(fetch(`${server.api}/library/${itemId}/content`)), BLOBS_DOWN);
    assert.ok(Date.now() - t0 < 2500);
    assert.equal(await detail503(upload(server.api, token, randomBytes(MiB), 'during-outage.bin')), BLOBS_DOWN);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
    assert.equal((await fetch(`${server.api}/library/${itemId}`)).status, 200, 'metadata still answers');
    assert.equal(Number(redis.cli('zcard', 'nd:items:created')), items, 'the failed upload left no item');

    await s3.start();
    await within(5000, async () => (await fetch(`${server.url}/readyz`)).status === 200);
    // The failed upload's cleanup could not reach S3; its lease runs out and the sweeper finishes it.
    await within(8000, async () => Number(redis.cli('zcard', 'nd:uploads')) === 0);
    const back = await fetch(`${server.api}/library/${itemId}/content`);
    assert.equal(sha(Buffer.from(await back.arrayBuffer())), sha(bytes));
    const big = randomBytes(20 * MiB + 3); // a multipart upload to S3 after the outage
    const res = await upload(server.api, token, big, 'after-s3.bin');
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    assert.equal(sha(Buffer.from(await (await fetch(`${server.api}/library/${id}/content`)).arrayBuffer())), sha(big));
  });
});

describe('the catalog as its own service (as Compose runs it)', () => {
  const log = createLogger('test', 'silent');
  let redis: TestRedis;
  let data: { path: string; cleanup(): void };
  let client: Redis;
  let catalog: FastifyInstance;
  let gateway: FastifyInstance;
  let api: string;
  let token: string;

  before(async () => {
    redis = await startRedis();
    data = tempDir();
    client = createRedis(redis.url, log);
    await waitForRedis(client, log);
    const config = (catalogUrl: string) =>
      loadGatewayConfig({ NONDIVY_DATA_DIR: data.path, REDIS_URL: redis.url, NONDIVY_CATALOG_URL: catalogUrl, NONDIVY_ADMIN_PASSWORD: 'admin-password' });
    const deps = await createGatewayDeps(config('http://127.0.0.1:1'), log, client);
    catalog = await buildCatalog(loadCatalogConfig({}), { log, redis: client, blobs: deps.blobs });
    const catalogUrl = await listenOnLoopback(catalog);
    const gatewayDeps = await createGatewayDeps(config(catalogUrl), log, client);
    await gatewayDeps.blobs.init(); // creates the blob folders, as start-up does
    await gatewayDeps.auth.bootstrapAdmin('admin-password');
    gateway = await buildGateway(config(catalogUrl), gatewayDeps);
    api = `${await listenOnLoopback(gateway)}/api/v1`;
    token = await login(api, 'admin', 'admin-password');
  });

  after(async () => {
    await gateway?.close();
    await catalog?.close();
    client?.disconnect();
    await redis?.close();
    data?.cleanup();
  });

  it('while Redis is down, a search names the database behind the catalog and promises nothing about uploads', async () => {
    await redis.stop();
    try {
      const search = await detail503(fetch(`${api}/library?q=x`));
      assert.match(search, /catalog service/);
      assert.match(search, /database is unavailable/);
      assert.doesNotMatch(search, /uploads and downloads still work/);
      assert.equal(await detail503(upload(api, token, Buffer.from('x'), 'x.bin')), DATABASE_DOWN);
    } finally {
      await redis.start();
    }
    await within(5000, async () => (await fetch(`${api}/library?q=x`)).status === 200);
  });

  it('while the catalog service is down, a search names it, and uploads still work', async () => {
    await catalog.close();
    assert.equal(await detail503(fetch(`${api}/library?q=x`)), 'The catalog service does not answer: searching and browsing are unavailable');
    assert.match(await detail503(fetch(`${api}/library/facets`)), /^The catalog service does not answer/);
    const up = await upload(api, token, Buffer.from('still works'), 'still.txt');
    assert.equal(up.status, 201, await up.clone().text());
  });
});

describe('a server killed mid-upload (fs driver)', () => {
  let redis: TestRedis;
  let data: { path: string; cleanup(): void };
  const tmpFiles = () => {
    const dir = join(data.path, 'blobs', 'tmp');
    return existsSync(dir) ? readdirSync(dir) : [];
  };

  before(async () => {
    redis = await startRedis();
    data = tempDir();
  });
  after(async () => {
    await redis?.close();
    data?.cleanup();
  });

  it('leaves no item, and its partial upload is swept on the next start', async () => {
    const env = { REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: 'admin-password', NONDIVY_UPLOAD_LEASE_SECONDS: '1' };
    const first = await startServer(env);
    const token = await login(first.api, 'admin', 'admin-password');
    const boundary = 'xyz';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n`;
    const request = `POST /api/v1/library HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + 50 * MiB}\r\n\r\n`;
    // Stream part of an upload, then kill the server while it is receiving it.
    const sending = rawRequest(first.port, [request, head, randomBytes(4 * MiB)], { timeoutMs: 3000 });
    await within(5000, async () => tmpFiles().length > 0 && Number(redis.cli('zcard', 'nd:uploads')) === 1);
    await first.kill();
    await sending;
    assert.equal(tmpFiles().length, 1, 'the dead process left a partial file');

    await new Promise((r) => setTimeout(r, 1200)); // the lease runs out
    const second = await startServer(env);
    try {
      await within(5000, async () => tmpFiles().length === 0 && Number(redis.cli('zcard', 'nd:uploads')) === 0);
      assert.equal(Number(redis.cli('zcard', 'nd:items:created')), 0, 'no item was ever visible');
      await within(2000, async () => second.logs.some((l) => l.msg === 'swept leftovers' && l.uploads === 1)); // the sweep is logged
      const list = (await (await fetch(`${second.api}/library`, { headers: bearer(token) })).json()) as { items: unknown[] };
      assert.deepEqual(list.items, []);
    } finally {
      await second.stop();
    }
  });
});
