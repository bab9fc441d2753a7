/**
 * Device presence and transfer offers through the REST API against the real stack (the standalone
 * server as a child process and a real Redis): presence events, heartbeats and expiry, the offer
 * state machine, who may do what, and the relay as a pipe.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bearer, login, readEvents } from './helpers/http.js';
import { startServerWithRedis, type ServerWithRedis, type TestServer } from './helpers/server.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Transfer {
  id: string;
  state: string;
  reason: string | null;
  route: string | null;
  directUrl: string | null;
  directToken: string | null;
  files: { n: number; name: string; size: number; sha256: string }[];
}

async function within<T>(ms: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`condition not met within ${ms} ms`);
}

describe('devices and transfers over the API', () => {
  let stack: ServerWithRedis;
  let server: TestServer;
  let admin: string;
  let alice: string;
  let bob: string;

  const api = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    if (init.json !== undefined) headers.set('content-type', 'application/json');
    return fetch(`${server.api}${path}`, { ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body });
  };
  const register = async (token: string | null, name: string, directUrl?: string) => {
    const res = await api('/devices', { method: 'POST', headers: token ? bearer(token) : {}, json: { name, ...(directUrl ? { directUrl } : {}) } });
    return { status: res.status, body: (await res.json()) as { device: { id: string; name: string }; token: string; heartbeatMs: number } };
  };
  const dev = (token: string) => ({ 'x-device-token': token });

  before(async () => {
    stack = await startServerWithRedis({
      NONDIVY_OFFER_TTL_SECONDS: '2',
      NONDIVY_RELAY_WAIT_SECONDS: '3',
    });
    server = stack.server;
    admin = await login(server.api, 'admin', 'admin-password');
    for (const name of ['alice', 'bob']) {
      const res = await api('/users', { method: 'POST', headers: bearer(admin), json: { username: name, password: `${name}-password` } });
      assert.equal(res.status, 201);
    }
    alice = await login(server.api, 'alice', 'alice-password');
    bob = await login(server.api, 'bob', 'bob-password');
  });
  after(() => stack?.close());

  it('a device appears at once (with a device.online event) and disappears within 15 s of its last heartbeat (device.offline)', async () => {
    const stream = readEvents(`${server.api}/events`);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const { status, body } = await register(alice, 'alice-phone');
    assert.equal(status, 201);
    assert.match(body.token, /^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
    const listed = (await (await api('/devices', { headers: bearer(bob) })).json()) as { devices: { id: string; name: string; owner: string }[] };
    assert.ok(listed.devices.some((d) => d.id === body.device.id && d.owner === 'alice'));
    const online = await within(1000, async () => stream.events.find((e) => e.event === 'device.online' && e.data.id === body.device.id));
    assert.ok(online.at - t0 < 1000);
    // Heartbeats keep it online past the TTL...
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, body.heartbeatMs));
      assert.equal((await api(`/devices/${body.device.id}/heartbeat`, { method: 'PUT', headers: dev(body.token) })).status, 204);
    }
    assert.ok(!stream.events.some((e) => e.event === 'device.offline'));
    // ...and without them it goes.
    const silent = Date.now();
    const offline = await within(16_000, async () => stream.events.find((e) => e.event === 'device.offline' && e.data.id === body.device.id));
    assert.ok(offline.at - silent <= 15_000, `${offline.at - silent} ms`);
    const after = (await (await api('/devices', { headers: bearer(bob) })).json()) as { devices: { id: string }[] };
    assert.ok(!after.devices.some((d) => d.id === body.device.id));
    assert.equal((await api(`/devices/${body.device.id}/heartbeat`, { method: 'PUT', headers: dev(body.token) })).status, 401, 'an expired device must register again');
    await stream.close();
  });

  it('only members register and list devices (guests only when guest sharing is on)', async () => {
    assert.equal((await register(null, 'guest-laptop')).status, 401);
    assert.equal((await api('/devices')).status, 401);
    assert.equal((await api('/devices', { method: 'POST', headers: bearer(alice), json: { name: '' } })).status, 400);
    assert.equal((await api('/devices', { method: 'POST', headers: bearer(alice), json: { name: 'a\u0000b' } })).status, 400);
  });

  it('offers: accept, reject, cancel, expire — and who may do what', async () => {
    const a = (await register(alice, 'alice-laptop')).body;
    const b = (await register(bob, 'bob-desktop', 'http://127.0.0.1:9')).body;
    const offer = async () => {
      const res = await api('/transfers', { method: 'POST', headers: dev(a.token), json: { from: a.device.id, to: b.device.id, files: [{ name: 'x.txt', size: 3, sha256: sha(Buffer.from('abc')) }] } });
      assert.equal(res.status, 201);
      return (await res.json()) as Transfer;
    };
    // Offer to an offline (unknown) device, to itself, with someone else's token.
    const offline = await api('/transfers', { method: 'POST', headers: dev(a.token), json: { from: a.device.id, to: 'ZZZZZZZZZZZZZZZZ', files: [{ name: 'x', size: 1, sha256: sha(Buffer.from('x')) }] } });
    assert.equal(offline.status, 409);
    assert.match(((await offline.json()) as { detail: string }).detail, /not online/);
    assert.equal((await api('/transfers', { method: 'POST', headers: dev(a.token), json: { from: a.device.id, to: a.device.id, files: [{ name: 'x', size: 1, sha256: sha(Buffer.from('x')) }] } })).status, 409);
    assert.equal((await api('/transfers', { method: 'POST', headers: dev(b.token), json: { from: a.device.id, to: b.device.id, files: [{ name: 'x', size: 1, sha256: sha(Buffer.from('x')) }] } })).status, 403);
    assert.equal((await api('/transfers', { method: 'POST', headers: { 'x-device-token': `${a.device.id}.${'A'.repeat(43)}` }, json: { from: a.device.id, to: b.device.id, files: [{ name: 'x', size: 1, sha256: sha(Buffer.from('x')) }] } })).status, 401);

    const t1 = await offer();
    assert.equal(t1.state, 'offered');
    // The sender cannot accept its own offer; a third device cannot see it.
    assert.equal((await api(`/transfers/${t1.id}/accept`, { method: 'POST', headers: dev(a.token), json: {} })).status, 403);
    const c = (await register(admin, 'admin-box')).body;
    assert.equal((await api(`/transfers/${t1.id}`, { headers: dev(c.token) })).status, 404);
    assert.equal((await api(`/transfers/${t1.id}/files/0`, { headers: dev(c.token) })).status, 404);
    const accepted = (await (await api(`/transfers/${t1.id}/accept`, { method: 'POST', headers: dev(b.token), json: { directToken: randomBytes(32).toString('base64url') } })).json()) as Transfer;
    assert.equal(accepted.state, 'accepted');
    assert.equal(accepted.directToken, null, 'the receiver does not get the direct secret back');
    const seenBySender = (await (await api(`/transfers/${t1.id}`, { headers: dev(a.token) })).json()) as Transfer;
    assert.equal(seenBySender.directUrl, 'http://127.0.0.1:9');
    assert.ok(seenBySender.directToken);
    assert.equal((await api(`/transfers/${t1.id}/accept`, { method: 'POST', headers: dev(b.token), json: {} })).status, 409, 'accepted once');
    assert.equal((await api(`/transfers/${t1.id}/finish`, { method: 'POST', headers: dev(a.token), json: { ok: true } })).status, 403, 'only the receiver confirms');
    const done = (await (await api(`/transfers/${t1.id}/finish`, { method: 'POST', headers: dev(b.token), json: { ok: true } })).json()) as Transfer;
    assert.equal(done.state, 'completed');

    const t2 = await offer();
    const rejected = (await (await api(`/transfers/${t2.id}/reject`, { method: 'POST', headers: dev(b.token), json: { reason: 'no thanks' } })).json()) as Transfer;
    assert.equal(rejected.state, 'rejected');
    assert.equal(((await (await api(`/transfers/${t2.id}`, { headers: dev(a.token) })).json()) as Transfer).reason, 'no thanks');

    const t3 = await offer();
    assert.equal((await api(`/transfers/${t3.id}`, { method: 'DELETE', headers: dev(a.token), json: { reason: 'oops' } })).status, 200);
    assert.equal(((await (await api(`/transfers/${t3.id}`, { headers: dev(b.token) })).json()) as Transfer).state, 'cancelled');

    const t4 = await offer();
    const expired = await within(5000, async () => {
      const t = (await (await api(`/transfers/${t4.id}`, { headers: dev(b.token) })).json()) as Transfer;
      return t.state === 'expired' ? t : undefined;
    });
    assert.match(expired.reason ?? '', /expired/);
    assert.equal((await api(`/transfers/${t4.id}/accept`, { method: 'POST', headers: dev(b.token), json: {} })).status, 409);
    const list = (await (await api(`/transfers?device=${b.device.id}`, { headers: dev(b.token) })).json()) as { transfers: Transfer[] };
    assert.deepEqual(new Set(list.transfers.map((t) => t.state)), new Set(['completed', 'rejected', 'cancelled', 'expired']));
  });

  it('the relay pipes a sender\'s PUT into the receiver\'s GET, refuses more bytes than offered, and fails both sides clearly', async () => {
    const a = (await register(alice, 'alice-relay')).body;
    const b = (await register(bob, 'bob-relay')).body;
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const offer = async (size = bytes.length) => {
      const t = (await (await api('/transfers', { method: 'POST', headers: dev(a.token), json: { from: a.device.id, to: b.device.id, files: [{ name: 'r.bin', size, sha256: sha(bytes) }] } })).json()) as Transfer;
      assert.equal((await api(`/transfers/${t.id}/accept`, { method: 'POST', headers: dev(b.token), json: {} })).status, 200);
      return t;
    };
    const t = await offer();
    // Not before acceptance, not with the wrong device's token.
    assert.equal((await api(`/transfers/${t.id}/files/0`, { headers: dev(a.token) })).status, 403);
    assert.equal((await api(`/transfers/${t.id}/files/1`, { headers: dev(b.token) })).status, 404);
    const receiving = api(`/transfers/${t.id}/files/0`, { headers: dev(b.token) }).then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) }));
    const sent = await api(`/transfers/${t.id}/files/0`, { method: 'PUT', headers: { ...dev(a.token), 'content-type': 'application/octet-stream' }, body: bytes });
    assert.equal(sent.status, 204);
    const got = await receiving;
    assert.equal(got.status, 200);
    assert.equal(sha(got.body), sha(bytes));
    assert.equal(((await (await api(`/transfers/${t.id}`, { headers: dev(a.token) })).json()) as Transfer).route, 'relay');

    // A sender that says it sends more than offered is refused before a byte goes through.
    const t2 = await offer(1000);
    const tooMuch = await api(`/transfers/${t2.id}/files/0`, { method: 'PUT', headers: { ...dev(a.token), 'content-type': 'application/octet-stream' }, body: randomBytes(2000) });
    assert.equal(tooMuch.status, 400);

    // The receiver never comes: the sender is told, and the transfer is failed for both.
    const t3 = await offer();
    const lonely = await api(`/transfers/${t3.id}/files/0`, { method: 'PUT', headers: { ...dev(a.token), 'content-type': 'application/octet-stream' }, body: bytes });
    assert.equal(lonely.status, 503);
    assert.match(((await lonely.json()) as { detail: string }).detail, /receiver did not connect/);
    const failed = (await (await api(`/transfers/${t3.id}`, { headers: dev(b.token) })).json()) as Transfer;
    assert.equal(failed.state, 'failed');
  });
});
