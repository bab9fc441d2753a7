/**
 * Federation end to end: two complete sites on one machine (each its own Redis, blob folder and
 * ports, the standalone server as a child process), linked through the real API. Search, download
 * (Range, ETag, pull, our own copy) and device-to-device transfers across both gateways; every
 * refusal of a site-to-site request, with the reason it logs; invites used once or too late; a
 * linked site frozen, stopped and restarted; unlinking on both sides and on ours alone.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { bearer, login, rawRequest, upload } from './helpers/http.js';
import { decodeInvite } from '@nondivy/federation';
import { sendTo, signedFetch, signedHeaders, startSite, strangerSigner, type Signer, type Site } from './helpers/sites.js';

const TIMEOUT_MS = 1500;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Link {
  siteId: string;
  name: string;
  url: string;
  state: 'online' | 'unreachable';
  lastContactAt: string | null;
  unreachableSince: string | null;
  latencyMs: number | null;
  createdAt: string;
}
interface SiteAnswer {
  siteId: string;
  name: string;
  ok: boolean;
  error?: string;
}
interface Item {
  id: string;
  title: string;
  size: number;
  sha256: string;
  site?: string;
}
interface Device {
  id: string;
  name: string;
  owner: string;
  directUrl: string | null;
  site?: string;
}
interface Transfer {
  id: string;
  state: string;
  route: string | null;
  directUrl: string | null;
  directToken: string | null;
  reason: string | null;
  from: { device: string; site?: string };
  to: { device: string; site?: string };
}

async function within<T>(ms: number, probe: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await Promise.resolve()
      .then(probe)
      .catch(() => undefined);
    if (v) return v;
    if (Date.now() - t0 > ms) assert.fail(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const json = async <T>(res: Response | Promise<Response>, status = 200): Promise<T> => {
  const r = await res;
  const text = await r.text();
  assert.equal(r.status, status, text);
  return JSON.parse(text) as T;
};

describe('federation between two sites on one machine', () => {
  let a: Site;
  let b: Site;
  /** Site B's real identity, to sign requests to A as B does. */
  let asB: Signer;
  let alice: string;
  let firstInvite: string;
  let aItem: Item;
  let bItem: Item;
  let bBytes: Buffer;
  /** An item only B holds (A never copies it). */
  let bOnly: Item;
  /** A's own items matching "aurora": its upload, and later the copy it pulls from B. */
  const aAurora: string[] = [];
  /** The transfer sent from A to B, with the token and name of A's sending device. */
  let crossed: { id: string; senderToken: string; aDeviceName: string };

  const links = async (s: Site) => (await json<{ links: Link[] }>(s.call('/federation/links', { token: s.admin }))).links;
  const federatedSearch = (s: Site, q: string) => json<{ items: Item[]; sites: SiteAnswer[] }>(s.call(`/library?q=${encodeURIComponent(q)}&scope=federated`));
  const hostOf = (s: Site) => new URL(s.url).host;
  const dev = (token: string) => ({ 'x-device-token': token });
  const register = async (s: Site, name: string, directUrl?: string) =>
    json<{ device: Device; token: string }>(s.call('/devices', { method: 'POST', token: s.admin, json: { name, ...(directUrl ? { directUrl } : {}) } }), 201);
  /** Waits for the refusal log line of a request to `path` on A, and returns it. */
  const refusedLog = (path: string, reason: string) =>
    within(2000, () => a.logs().find((l) => l.msg === 'refused a federation request' && l.path === path && l.reason === reason));
  /** A 401 problem naming `reason`, logged by A with the same reason. */
  const expectRefused = async (res: Response, path: string, reason: string) => {
    const body = (await res.json()) as { status: number; detail: string };
    assert.equal(res.status, 401, `${path}: ${JSON.stringify(body)}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(body.detail, `Federation request refused: ${reason}`);
    return refusedLog(path, reason);
  };

  before(async () => {
    const [startedA, startedB] = await Promise.allSettled([
      startSite('Site A', { NONDIVY_FEDERATION_TIMEOUT_MS: String(TIMEOUT_MS), NONDIVY_PRESENCE_TTL_SECONDS: '60' }),
      // B's invites last one second, to see one expire.
      // B logs each request (at debug): a test counts what reached it.
      startSite('Site B', { NONDIVY_FEDERATION_TIMEOUT_MS: String(TIMEOUT_MS), NONDIVY_PRESENCE_TTL_SECONDS: '60', NONDIVY_INVITE_TTL_SECONDS: '1', LOG_LEVEL: 'debug' }),
    ]);
    // Kept even when the other failed to start, so that `after` stops it.
    if (startedA.status === 'fulfilled') a = startedA.value;
    if (startedB.status === 'fulfilled') b = startedB.value;
    for (const r of [startedA, startedB]) if (r.status === 'rejected') throw r.reason;
    asB = { siteId: b.siteId, keys: b.keys() };
    assert.notEqual(a.siteId, b.siteId);
    await json(a.call('/users', { method: 'POST', token: a.admin, json: { username: 'alice', password: 'alice-password', role: 'member' } }), 201);
    alice = await login(a.api, 'alice', 'alice-password');

    aItem = await json<Item>(upload(a.api, a.admin, Buffer.from('notes taken under the aurora, site A'), 'aurora-notes.txt', { title: 'Aurora notes' }, 'text/plain'), 201);
    aAurora.push(aItem.id);
    bBytes = randomBytes(300_000);
    bItem = await json<Item>(upload(b.api, b.admin, bBytes, 'aurora-borealis.bin', { title: 'Aurora borealis recording' }), 201);
    bOnly = await json<Item>(upload(b.api, b.admin, Buffer.from('kept on site B alone'), 'lonely.txt', { title: 'Lonely file' }, 'text/plain'), 201);
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
  });

  it('links two sites through the real API: an admin invites, the other links, both list each other online; only admins manage links', async () => {
    // Only admins invite and link.
    assert.equal((await a.call('/federation/invites', { method: 'POST' })).status, 401);
    assert.equal((await a.call('/federation/invites', { method: 'POST', token: alice })).status, 403);
    assert.equal((await a.call('/federation/links', { token: alice })).status, 403);
    assert.equal((await a.call('/federation/links')).status, 401);

    const invite = await json<{ code: string; expiresAt: string; url: string }>(a.call('/federation/invites', { method: 'POST', token: a.admin }), 201);
    assert.match(invite.code, /^ndv1\.[A-Za-z0-9_-]+$/);
    assert.equal(invite.url, a.url);
    const ttl = Date.parse(invite.expiresAt) - Date.now();
    assert.ok(ttl > 3500_000 && ttl <= 3600_000, `default invite TTL, got ${ttl} ms`);
    firstInvite = invite.code;

    assert.equal((await a.call('/federation/links', { method: 'POST', token: alice, json: { code: invite.code } })).status, 403);
    const link = await json<Link>(b.call('/federation/links', { method: 'POST', token: b.admin, json: { code: invite.code } }), 201);
    assert.deepEqual({ siteId: link.siteId, name: link.name, url: link.url, state: link.state }, { siteId: a.siteId, name: 'Site A', url: a.url, state: 'online' });
    assert.equal(Object.keys(link).sort().join(), 'createdAt,lastContactAt,latencyMs,name,siteId,state,unreachableSince,url', 'no key material');

    const fromA = await links(a);
    assert.equal(fromA.length, 1);
    assert.deepEqual({ siteId: fromA[0]!.siteId, name: fromA[0]!.name, url: fromA[0]!.url, state: fromA[0]!.state }, { siteId: b.siteId, name: 'Site B', url: b.url, state: 'online' });
    assert.equal((await links(b)).length, 1);
    assert.ok(a.logs().some((l) => l.msg === 'linked to another site' && l.site === b.siteId));
    assert.ok(b.logs().some((l) => l.msg === 'linked to another site' && l.site === a.siteId));
  });

  it('searches across sites: our items first, then the linked site\'s, each marked with its site', async () => {
    const fromA = await federatedSearch(a, 'aurora');
    assert.deepEqual(
      fromA.items.map((i) => [i.id, i.site]),
      [
        [aItem.id, undefined],
        [bItem.id, b.siteId],
      ],
    );
    assert.deepEqual(fromA.sites, [{ siteId: b.siteId, name: 'Site B', ok: true }]);
    // Only B's item matches "borealis"; without scope=federated, only our own library is searched.
    assert.deepEqual((await federatedSearch(a, 'borealis')).items.map((i) => i.id), [bItem.id]);
    const local = await json<{ items: Item[]; sites?: unknown }>(a.call('/library?q=aurora'));
    assert.deepEqual(local.items.map((i) => i.id), [aItem.id]);
    assert.equal(local.sites, undefined);
    // The other way round.
    const fromB = await federatedSearch(b, 'notes');
    assert.deepEqual(fromB.items.map((i) => [i.id, i.site]), [[aItem.id, a.siteId]]);
    assert.deepEqual(fromB.sites, [{ siteId: a.siteId, name: 'Site A', ok: true }]);
    assert.deepEqual((await federatedSearch(a, 'nothingmatchesthis')).items, []);
  });

  it(
    'pages a federated search without repeating the linked sites\' items on later pages',
    async () => {
      for (let i = 0; i < 3; i++) await json(upload(a.api, a.admin, Buffer.from(`zephyr ${i} of site A`), `zephyr-${i}.txt`, { title: `Zephyr local ${i}` }, 'text/plain'), 201);
      const remote = await json<Item>(upload(b.api, b.admin, Buffer.from('zephyr of site B'), 'zephyr-b.txt', { title: 'Zephyr remote' }, 'text/plain'), 201);
      const seen: Item[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: Item[]; nextCursor: string | null } = await json(a.call(`/library?q=zephyr&scope=federated&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`));
        seen.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor && seen.length < 20);
      assert.equal(seen.filter((i) => i.id === remote.id).length, 1, 'the linked site\'s item comes once');
      assert.equal(seen.filter((i) => !i.site).length, 3);
    },
  );

  it('downloads across through the gateway, with Range and ETag; pulls a verified copy, then serves its own copy', async () => {
    const base = `/sites/${b.siteId}/library/${bItem.id}`;
    const meta = await json<Item>(a.call(base));
    assert.equal(meta.site, b.siteId);
    assert.equal(meta.sha256, sha(bBytes));
    assert.equal((await a.call(`/sites/${b.siteId}/library/${'x'.repeat(bItem.id.length)}`)).status, 404, 'no such item on B');
    assert.equal((await a.call(`/sites/unknownsite1/library/${bItem.id}`)).status, 404, 'no such linked site');

    const whole = await a.call(`${base}/content`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('etag'), `"${sha(bBytes)}"`);
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    // Another site's bytes never render as a page of this origin.
    assert.equal(whole.headers.get('content-disposition'), 'attachment; filename="aurora-borealis.bin"');
    assert.equal(whole.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(whole.headers.get('content-security-policy'), "default-src 'none'; sandbox");
    assert.equal(sha(Buffer.from(await whole.arrayBuffer())), sha(bBytes));

    const part = await a.call(`${base}/content`, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 1000-1999/${bBytes.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), bBytes.subarray(1000, 2000));
    const tail = await a.call(`${base}/content`, { headers: { range: 'bytes=-100' } });
    assert.equal(tail.status, 206);
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), bBytes.subarray(bBytes.length - 100));
    const cached = await a.call(`${base}/content`, { headers: { 'if-none-match': `"${sha(bBytes)}"` } });
    assert.equal(cached.status, 304);
    const outside = await a.call(`${base}/content`, { headers: { range: `bytes=${bBytes.length + 10}-` } });
    assert.equal(outside.status, 416);
    assert.equal(outside.headers.get('content-range'), `bytes */${bBytes.length}`);
    await outside.body?.cancel();

    // Pulling: admins only; the copy has the same bytes.
    assert.equal((await a.call(`${base}/pull`, { method: 'POST' })).status, 401);
    assert.equal((await a.call(`${base}/pull`, { method: 'POST', token: alice })).status, 403);
    const copy = await json<Item>(a.call(`${base}/pull`, { method: 'POST', token: a.admin }), 201);
    assert.notEqual(copy.id, bItem.id);
    assert.equal(copy.sha256, sha(bBytes));
    assert.equal(copy.site, undefined);
    aAurora.push(copy.id);
    assert.equal((await json<Item>(a.call(`/library/${copy.id}`))).sha256, sha(bBytes));

    // Now that A holds the same bytes, it serves its own copy: B is asked what the item is, never for its bytes.
    const contentPath = `/federation/v1/library/${bItem.id}/content`;
    const asked = () => b.logs().filter((l) => l.msg === 'incoming request' && (l.req as { url: string }).url === contentPath).length;
    const before = asked();
    const local = await a.call(`${base}/content`, { headers: { range: 'bytes=10-19' } });
    assert.equal(local.status, 206);
    assert.equal(local.headers.get('content-range'), `bytes 10-19/${bBytes.length}`);
    assert.deepEqual(Buffer.from(await local.arrayBuffer()), bBytes.subarray(10, 20));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(asked(), before, 'B sent no bytes');
    assert.ok(before > 0);
  });

  it('serves a linked site\'s hostile file name through our own name rule: the whole Content-Disposition is ours', async () => {
    const bytes = randomBytes(2000);
    const item = await json<Item>(upload(b.api, b.admin, bytes, 'plain.bin'), 201);
    // Uploads already clean names, so B's stored name is made hostile directly, as a site we do not
    // control may serve it: quotes, a backslash, %, CR/LF, C0 controls, DEL and a bidi override.
    b.redis.cli('HSET', `nd:item:${item.id}`, 'filename', 'dir\\re"port 100%\r\nX-Injected: 1\u0001\u007f\u202e.txt');
    const res = await a.call(`/sites/${b.siteId}/library/${item.id}/content`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-disposition'), `attachment; filename="re_port 100_X-Injected_ 1.txt"; filename*=UTF-8''re_port%20100%25X-Injected_%201.txt`);
    assert.equal(res.headers.get('x-injected'), null);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
  });

  it('lists devices across with only what is public, and sends a file device-to-device through both gateways', async () => {
    const sender = await register(a, 'a-laptop', 'http://127.0.0.1:9');
    const receiver = await register(b, 'b-phone', 'http://127.0.0.1:9');

    const listed = await json<{ devices: Device[]; sites: SiteAnswer[] }>(a.call('/devices?scope=federated', { token: a.admin }));
    assert.deepEqual(listed.sites, [{ siteId: b.siteId, name: 'Site B', ok: true }]);
    const mine = listed.devices.find((d) => d.id === sender.device.id);
    assert.equal(mine?.owner, 'admin');
    assert.equal(mine?.site, undefined);
    const theirs = listed.devices.find((d) => d.id === receiver.device.id);
    assert.deepEqual({ name: theirs?.name, owner: theirs?.owner, directUrl: theirs?.directUrl, site: theirs?.site }, { name: 'b-phone', owner: '', directUrl: null, site: b.siteId });
    // What a linked site asks for directly shows no accounts and no LAN addresses either.
    const peerView = await json<{ devices: Device[] }>(signedFetch(asB, a, 'GET', '/federation/v1/devices'));
    assert.ok(peerView.devices.length >= 1);
    for (const d of peerView.devices) {
      assert.equal(d.owner, '');
      assert.equal(d.directUrl, null);
    }

    const bytes = randomBytes(2 * 1024 * 1024 + 123);
    const files = [{ name: 'across.bin', size: bytes.length, sha256: sha(bytes) }];
    const offline = await a.call('/transfers', { method: 'POST', headers: dev(sender.token), json: { from: sender.device.id, to: 'nobody@Site B', files } });
    assert.equal(offline.status, 409, 'B says the device is not online');
    await offline.body?.cancel();
    assert.equal((await a.call('/transfers', { method: 'POST', headers: dev(sender.token), json: { from: sender.device.id, to: `${receiver.device.id}@nosuchsite`, files } })).status, 404);

    const offered = await json<Transfer>(a.call('/transfers', { method: 'POST', headers: dev(sender.token), json: { from: sender.device.id, to: `${receiver.device.id}@${b.siteId}`, files } }), 201);
    assert.equal(offered.state, 'offered');
    assert.equal(offered.to.site, b.siteId);
    // B keeps its own record under the same id, and its receiver sees it.
    const inbox = await json<{ transfers: Transfer[] }>(b.call(`/transfers?device=${receiver.device.id}`, { headers: dev(receiver.token) }));
    const mirrored = inbox.transfers.find((t) => t.id === offered.id);
    assert.equal(mirrored?.state, 'offered');
    assert.equal(mirrored?.from.site, a.siteId);
    assert.equal(mirrored?.from.device, sender.device.id);

    const accepted = await json<Transfer>(b.call(`/transfers/${offered.id}/accept`, { method: 'POST', headers: dev(receiver.token), json: { directToken: randomBytes(32).toString('base64url') } }));
    assert.equal(accepted.state, 'accepted');
    const seenByA = await within(5000, async () => {
      const t = await json<Transfer>(a.call(`/transfers/${offered.id}`, { headers: dev(sender.token) }));
      return t.state === 'accepted' && t;
    });
    assert.equal(seenByA.directUrl, null, 'a device on another site is never sent a LAN address');
    assert.equal(seenByA.directToken, null);

    const receiving = b.call(`/transfers/${offered.id}/files/0`, { headers: dev(receiver.token) }).then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) }));
    await new Promise((r) => setTimeout(r, 100));
    const sent = await fetch(`${a.api}/transfers/${offered.id}/files/0`, { method: 'PUT', headers: { ...dev(sender.token), 'content-type': 'application/octet-stream' }, body: bytes });
    assert.equal(sent.status, 204, await sent.text());
    const got = await receiving;
    assert.equal(got.status, 200);
    assert.equal(got.body.length, bytes.length);
    assert.equal(sha(got.body), sha(bytes));

    const done = await json<Transfer>(b.call(`/transfers/${offered.id}/finish`, { method: 'POST', headers: dev(receiver.token), json: { ok: true } }));
    assert.equal(done.state, 'completed');
    const doneOnA = await within(5000, async () => {
      const t = await json<Transfer>(a.call(`/transfers/${offered.id}`, { headers: dev(sender.token) }));
      return t.state === 'completed' && t;
    });
    assert.equal(doneOnA.route, 'relay');
    crossed = { id: offered.id, senderToken: sender.token, aDeviceName: 'a-laptop' };
    assert.ok(a.logs().some((l) => l.msg === 'file relayed' && l.transfer === offered.id));

    // Devices and sites by name too; a cancel on A reaches B.
    const byName = await json<Transfer>(a.call('/transfers', { method: 'POST', headers: dev(sender.token), json: { from: sender.device.id, to: 'b-phone@Site B', files } }), 201);
    assert.equal(byName.to.device, receiver.device.id);
    await json(a.call(`/transfers/${byName.id}`, { method: 'DELETE', headers: dev(sender.token), json: { reason: 'changed my mind' } }));
    const cancelled = await within(5000, async () => {
      const t = await json<Transfer>(b.call(`/transfers/${byName.id}`, { headers: dev(receiver.token) }));
      return t.state === 'cancelled' && t;
    });
    assert.equal(cancelled.reason, 'changed my mind');
  });

  it(
    'a linked site cannot overwrite one of our transfers by offering again under its id',
    async () => {
      const body = JSON.stringify({
        id: crossed.id,
        from: { device: 'BBBBBBBBBBBBBBBB', name: 'again' },
        to: crossed.aDeviceName,
        files: [{ name: 'other.bin', size: 5, sha256: sha(Buffer.from('other')) }],
      });
      const res = await signedFetch(asB, a, 'POST', '/federation/v1/transfers', body);
      await res.body?.cancel();
      const t = await json<Transfer>(a.call(`/transfers/${crossed.id}`, { headers: dev(crossed.senderToken) }));
      assert.equal(t.state, 'completed', 'the finished transfer stays as it was');
      assert.equal(res.status, 409);
    },
  );

  it('refuses every site-to-site request not signed by a linked site, and logs why', async () => {
    const host = hostOf(a);
    const honest = (path: string, method = 'GET', body?: string) => signedHeaders(asB, { method, path, host, to: a.siteId, body });

    // The honest request is accepted (so each refusal below is due to the one thing changed).
    const ok = await json<{ items: Item[] }>(sendTo(a, 'GET', '/federation/v1/library?q=aurora', honest('/federation/v1/library?q=aurora')));
    assert.deepEqual(ok.items.map((i) => i.id).sort(), [...aAurora].sort());

    // Not signed at all.
    const unsigned = '/federation/v1/library?q=unsigned';
    const line = await expectRefused(await fetch(`${a.url}${unsigned}`), unsigned, 'not signed');
    assert.equal(line.ip, '127.0.0.1');
    assert.equal(line.level, 40);
    const noSignature = '/federation/v1/library?q=nosignature';
    const partial = honest(noSignature);
    delete partial['x-nondivy-signature'];
    await expectRefused(await sendTo(a, 'GET', noSignature, partial), noSignature, 'not signed');

    // Addressed to another site (B signs a request for itself and sends it to A).
    const misaddressed = '/federation/v1/library?q=misaddressed';
    await expectRefused(await sendTo(a, 'GET', misaddressed, signedHeaders(asB, { method: 'GET', path: misaddressed, host, to: b.siteId })), misaddressed, 'addressed to another site');

    // Signed with another key than the one B gave when linking.
    const forged = '/federation/v1/library?q=forged';
    const impostor: Signer = { siteId: b.siteId, keys: strangerSigner().keys };
    await expectRefused(await sendTo(a, 'GET', forged, signedHeaders(impostor, { method: 'GET', path: forged, host, to: a.siteId })), forged, 'bad signature');
    // A signature that is not even base64 of the right length.
    const garbage = '/federation/v1/library?q=garbage';
    await expectRefused(await sendTo(a, 'GET', garbage, { ...honest(garbage), 'x-nondivy-signature': 'AAAA' }), garbage, 'bad signature');

    // A well-formed signature from a site that is not linked.
    const stranger = '/federation/v1/library?q=stranger';
    await expectRefused(await sendTo(a, 'GET', stranger, signedHeaders(strangerSigner(), { method: 'GET', path: stranger, host, to: a.siteId })), stranger, 'not a linked site');

    // Replayed: the same request twice.
    const replay = '/federation/v1/library?q=replay';
    const once = honest(replay);
    assert.equal((await sendTo(a, 'GET', replay, once)).status, 200);
    await expectRefused(await sendTo(a, 'GET', replay, once), replay, 'replayed (nonce already used)');

    // Timestamps: 5 minutes old or ahead is refused (correctly signed); 30 s off is within the window.
    const stale = '/federation/v1/library?q=stale';
    await expectRefused(await sendTo(a, 'GET', stale, signedHeaders(asB, { method: 'GET', path: stale, host, to: a.siteId, date: Date.now() - 5 * 60_000 })), stale, 'timestamp outside the accepted window');
    const ahead = '/federation/v1/library?q=ahead';
    await expectRefused(await sendTo(a, 'GET', ahead, signedHeaders(asB, { method: 'GET', path: ahead, host, to: a.siteId, date: Date.now() + 5 * 60_000 })), ahead, 'timestamp outside the accepted window');
    const skewed = '/federation/v1/library?q=skewed';
    assert.equal((await sendTo(a, 'GET', skewed, signedHeaders(asB, { method: 'GET', path: skewed, host, to: a.siteId, date: Date.now() - 30_000 }))).status, 200);
    const nodate = '/federation/v1/library?q=nodate';
    await expectRefused(await sendTo(a, 'GET', nodate, { ...honest(nodate), 'x-nondivy-date': 'yesterday' }), nodate, 'timestamp outside the accepted window');

    // A nonce that is not 16-64 URL-safe characters.
    const shortNonce = '/federation/v1/library?q=shortnonce';
    await expectRefused(await sendTo(a, 'GET', shortNonce, signedHeaders(asB, { method: 'GET', path: shortNonce, host, to: a.siteId, nonce: 'short' })), shortNonce, 'bad nonce');

    // Tampered path: signed for ?q=a, sent with ?q=b.
    await expectRefused(await sendTo(a, 'GET', '/federation/v1/library?q=b', honest('/federation/v1/library?q=a')), '/federation/v1/library?q=b', 'bad signature');
    // Tampered host: signed for another Host than the one the request carries.
    const otherHost = '/federation/v1/library?q=otherhost';
    await expectRefused(await sendTo(a, 'GET', otherHost, signedHeaders(asB, { method: 'GET', path: otherHost, host: 'evil:1234', to: a.siteId })), otherHost, 'bad signature');
    // Tampered method: signed as HEAD, sent as GET.
    const content = `/federation/v1/library/${aItem.id}/content`;
    await expectRefused(await sendTo(a, 'GET', content, honest(content, 'HEAD')), content, 'bad signature');
    const headOk = await sendTo(a, 'HEAD', content, honest(content, 'HEAD'));
    assert.equal(headOk.status, 200);

    // Tampered body: a transfer offer changed after signing.
    const offer = (to: string) => JSON.stringify({ id: randomBytes(16).toString('base64url'), from: { device: 'AAAAAAAAAAAAAAAA', name: 'x' }, to, files: [{ name: 'x', size: 1, sha256: sha(Buffer.from('x')) }] });
    const path = '/federation/v1/transfers';
    const signedBody = offer('nobody');
    const control = await sendTo(a, 'POST', path, honest(path, 'POST', signedBody), signedBody);
    assert.equal(control.status, 409, 'the honest offer passes the signature check (and names a device that is not online)');
    await control.body?.cancel();
    const original = offer('nobody');
    const headers = honest(path, 'POST', original);
    await expectRefused(await sendTo(a, 'POST', path, headers, original.replace('"nobody"', '"nobody2"')), path, 'body digest does not match');
    // ...and with the digest header recomputed for the new body, the signature no longer matches.
    const changed = original.replace('"nobody"', '"nobody3"');
    await expectRefused(await sendTo(a, 'POST', path, { ...honest(path, 'POST', original), 'x-nondivy-digest': `sha-256=${createHash('sha256').update(changed).digest('base64')}` }, changed), path, 'bad signature');

    // No federation route reaches accounts: valid signature headers are no credential for /api.
    for (const p of ['/api/v1/users', '/api/v1/federation/links']) {
      const res = await sendTo(a, 'GET', p, honest(p));
      assert.equal(res.status, 401, p);
      await res.body?.cancel();
    }
    const create = JSON.stringify({ username: 'mallory', password: 'mallory-password', role: 'admin' });
    const res = await sendTo(a, 'POST', '/api/v1/users', honest('/api/v1/users', 'POST', create), create);
    assert.equal(res.status, 401);
    await res.body?.cancel();
    // Nor does a path that climbs out of /federation/v1 (sent raw: fetch would resolve the dots).
    for (const p of ['/federation/v1/../api/v1/users', '/federation/v1/%2e%2e/api/v1/users']) {
      const signed = Object.entries(honest(p)).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      const answer = await rawRequest(a.port, [`GET ${p} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n${signed}\r\n`]);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
      assert.equal(status, 404, `${p}: ${answer.slice(0, 200)}`);
      assert.ok(!answer.includes('"users"'));
    }
  });

  it('rate limits /federation/v1 per client address (600 a minute)', async () => {
    // From 127.0.0.2, so that the sites' own calls from 127.0.0.1 are not counted with ours.
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    const get = () =>
      new Promise<{ status: number; retryAfter?: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: a.port, path: '/federation/v1/ping', localAddress: '127.0.0.2', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const statuses: number[] = [];
      let limited: { status: number; retryAfter?: string } | undefined;
      // Enough for one full window even if the fixed window turns over during the burst.
      while (!limited && statuses.length < 1300) {
        const batch = await Promise.all(Array.from({ length: 25 }, get));
        for (const r of batch) {
          statuses.push(r.status);
          if (r.status === 429) limited ??= r;
        }
      }
      assert.ok(limited, 'never limited');
      assert.equal(limited.retryAfter, '60');
      const first = statuses.indexOf(429);
      assert.ok(first >= 600, `limited after ${first} requests`);
      assert.ok(statuses.slice(0, first).every((s) => s === 401));
      // Another address (the linked site's) is not affected.
      assert.equal((await signedFetch(asB, a, 'GET', '/federation/v1/ping')).status, 200);
    } finally {
      agent.destroy();
    }
  });

  it('refuses a handshake that claims a linked site\'s id with another key (no link takeover)', async () => {
    const invite = await json<{ code: string }>(a.call('/federation/invites', { method: 'POST', token: a.admin }), 201);
    const { secret } = decodeInvite(invite.code);
    const impostor = strangerSigner(b.siteId);
    const res = await fetch(`${a.url}/federation/v1/handshake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secret, nonce: randomBytes(16).toString('base64url'), site: { siteId: b.siteId, name: 'Impostor', url: 'http://127.0.0.1:9', publicKey: impostor.keys.publicKey } }),
    });
    assert.equal(res.status, 409);
    const links = await json<{ links: { siteId: string; url: string; name: string }[] }>(a.call('/federation/links', { token: a.admin }));
    const kept = links.links.find((l) => l.siteId === b.siteId)!;
    assert.equal(kept.url, b.url, 'the link to B is untouched');
    assert.notEqual(kept.name, 'Impostor');
  });

  it('uses an invite once, and not after it expires', async () => {
    // Used twice: A (which made it) refuses the second handshake.
    const again = await b.call('/federation/links', { method: 'POST', token: b.admin, json: { code: firstInvite } });
    const body = (await again.json()) as { detail: string };
    assert.equal(again.status, 403);
    assert.match(body.detail, /unknown, expired or already used/);
    await within(2000, () => a.logs().some((l) => l.msg === 'refused a handshake: invite unknown, expired or already used' && l.site === b.siteId));

    // B's invites live one second: after that, A cannot use one.
    const late = await json<{ code: string; expiresAt: string }>(b.call('/federation/invites', { method: 'POST', token: b.admin }), 201);
    assert.ok(Date.parse(late.expiresAt) - Date.now() <= 1000);
    await new Promise((r) => setTimeout(r, 1300));
    const expired = await a.call('/federation/links', { method: 'POST', token: a.admin, json: { code: late.code } });
    assert.equal(expired.status, 403);
    assert.match(((await expired.json()) as { detail: string }).detail, /unknown, expired or already used/);
    // A fresh one, used at once, works (so the refusal above was the expiry).
    const fresh = await json<{ code: string }>(b.call('/federation/invites', { method: 'POST', token: b.admin }), 201);
    const relinked = await json<Link>(a.call('/federation/links', { method: 'POST', token: a.admin, json: { code: fresh.code } }), 201);
    assert.equal(relinked.siteId, b.siteId);
    assert.equal((await links(a)).length, 1, 'linking again does not add a second link');
    assert.equal((await links(b)).length, 1);

    // Not a code; a site's own code; a made-up secret sent straight to the handshake.
    assert.equal((await a.call('/federation/links', { method: 'POST', token: a.admin, json: { code: 'ndv1.garbage' } })).status, 400);
    const own = await json<{ code: string }>(a.call('/federation/invites', { method: 'POST', token: a.admin }), 201);
    assert.equal((await a.call('/federation/links', { method: 'POST', token: a.admin, json: { code: own.code } })).status, 400);
    const keys = strangerSigner();
    const handshake = await fetch(`${a.url}/federation/v1/handshake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secret: randomBytes(24).toString('base64url'), nonce: randomBytes(16).toString('base64url'), site: { siteId: keys.siteId, name: 'Evil', url: 'http://127.0.0.1:9', publicKey: keys.keys.publicKey } }),
    });
    assert.equal(handshake.status, 403);
    assert.equal((await links(a)).length, 1);
  });

  it('B frozen or stopped: A answers within the timeout and names B unreachable; B restarted: the link comes back by itself', async (t) => {
    // Frozen: B accepts connections but never answers.
    b.server.child.kill('SIGSTOP');
    try {
      const t0 = Date.now();
      const frozen = await federatedSearch(a, 'aurora');
      const took = Date.now() - t0;
      assert.ok(took < TIMEOUT_MS + 500, `answered in ${took} ms`);
      assert.deepEqual(frozen.items.map((i) => i.id).sort(), [...aAurora].sort(), 'our own items still come, none of B\'s');
      assert.equal(frozen.sites.length, 1);
      assert.deepEqual({ siteId: frozen.sites[0]!.siteId, ok: frozen.sites[0]!.ok }, { siteId: b.siteId, ok: false });
      assert.match(frozen.sites[0]!.error ?? '', new RegExp(`did not answer within ${TIMEOUT_MS} ms`));
      const devices = await json<{ sites: SiteAnswer[] }>(a.call('/devices?scope=federated', { token: a.admin }));
      assert.equal(devices.sites[0]?.ok, false);
    } finally {
      b.server.child.kill('SIGCONT');
    }

    // Stopped.
    assert.equal(await b.server.stop(), 0);
    const t0 = Date.now();
    const stopped = await federatedSearch(a, 'aurora');
    assert.ok(Date.now() - t0 < TIMEOUT_MS + 500);
    assert.deepEqual(stopped.items.map((i) => i.id).sort(), [...aAurora].sort());
    assert.deepEqual({ siteId: stopped.sites[0]!.siteId, name: stopped.sites[0]!.name, ok: stopped.sites[0]!.ok }, { siteId: b.siteId, name: 'Site B', ok: false });
    assert.match(stopped.sites[0]!.error ?? '', /cannot be reached/);
    const down = await within(2000, async () => (await links(a)).find((l) => l.siteId === b.siteId && l.state === 'unreachable'));
    assert.ok(down.unreachableSince && Date.parse(down.unreachableSince) <= Date.now());
    const gone = await a.call(`/sites/${b.siteId}/library/${bOnly.id}/content`);
    assert.equal(gone.status, 503);
    await gone.body?.cancel();

    // Restarted with the same Redis, folder and port: nobody does anything, the link comes back.
    await b.restart();
    const restartedAt = Date.now();
    const up = await within(15_000, async () => (await links(a)).find((l) => l.siteId === b.siteId && l.state === 'online'));
    assert.equal(up.unreachableSince, null);
    assert.ok(Date.now() - restartedAt <= 15_000);
    t.diagnostic(`the link was online again ${Date.now() - restartedAt} ms after B was ready`);
    assert.equal((await links(b)).find((l) => l.siteId === a.siteId)?.state, 'online');
    const back = await federatedSearch(a, 'aurora');
    assert.deepEqual(back.sites.map((s) => s.ok), [true]);
    assert.ok(back.items.some((i) => i.id === bItem.id && i.site === b.siteId));
  });

  it('unlinks on both sides, then refuses the former link; unlinking a site that is gone unlinks ours', async () => {
    assert.equal((await b.call(`/federation/links/${a.siteId}`, { method: 'DELETE' })).status, 401);
    const memberB = await (async () => {
      await json(b.call('/users', { method: 'POST', token: b.admin, json: { username: 'bob', password: 'bob-password', role: 'member' } }), 201);
      return login(b.api, 'bob', 'bob-password');
    })();
    assert.equal((await b.call(`/federation/links/${a.siteId}`, { method: 'DELETE', headers: bearer(memberB) })).status, 403);

    assert.deepEqual(await json(b.call(`/federation/links/${a.siteId}`, { method: 'DELETE', token: b.admin })), { remote: 'unlinked' });
    assert.deepEqual(await links(b), []);
    assert.deepEqual(await links(a), []);
    assert.ok(a.logs().some((l) => l.msg === 'a linked site unlinked this site' && l.site === b.siteId));
    assert.equal((await b.call(`/federation/links/${a.siteId}`, { method: 'DELETE', token: b.admin })).status, 404);

    // B's key no longer opens anything on A, and A no longer asks B.
    const path = '/federation/v1/library?q=afterunlink';
    await expectRefused(await signedFetch(asB, a, 'GET', path), path, 'not a linked site');
    const alone = await federatedSearch(a, 'aurora');
    assert.deepEqual(alone.sites, []);
    assert.deepEqual(alone.items.map((i) => i.id).sort(), [...aAurora].sort());
    assert.equal((await a.call(`/sites/${b.siteId}/library/${bItem.id}`)).status, 404);

    // Linked again, then B goes away for good: A unlinks on its side alone.
    const invite = await json<{ code: string }>(a.call('/federation/invites', { method: 'POST', token: a.admin }), 201);
    await json(b.call('/federation/links', { method: 'POST', token: b.admin, json: { code: invite.code } }), 201);
    assert.equal((await links(a)).length, 1);
    await b.server.stop();
    assert.deepEqual(await json(a.call(`/federation/links/${b.siteId}`, { method: 'DELETE', token: a.admin })), { remote: 'unreachable' });
    assert.deepEqual(await links(a), []);
  });
});
