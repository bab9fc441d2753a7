/**
 * The relay never trusts the sender's length, and offers cannot be flooded: raw-socket senders
 * (node:net, chunked) that send more or fewer bytes than offered, or vanish, against a receiver on
 * a raw keep-alive socket, on one site and across two linked sites; caps on open offers per sender
 * and per receiver, on files and bytes per offer; `GET /transfers` a page at a time. The standalone
 * server as a child process, a real Redis.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { bearer, login } from './helpers/http.js';
import { tempDir } from './helpers/infra.js';
import { startServerWithRedis, type ServerWithRedis, type TestServer } from './helpers/server.js';
import { startSite, type Site } from './helpers/sites.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const dev = (token: string) => ({ 'x-device-token': token });
/** How long a receiver may wait to be cut off before the test calls it a hang. */
const CUT_WITHIN_MS = 4000;

interface Transfer {
  id: string;
  state: string;
  reason: string | null;
}

/** What a raw keep-alive receiver saw: the head, the announced body, anything after it, how it ended. */
interface Received {
  status: number;
  contentLength: number;
  body: Buffer;
  /** Bytes after the announced body (a second response smuggled onto the connection). */
  after: Buffer;
  /** The connection was closed (end or error) within the wait; false: still open (a hang). */
  closed: boolean;
}

/** A GET on a raw keep-alive socket; resolves when the server closes it, or after `waitMs`. */
function rawGet(port: number, path: string, headers: Record<string, string>, waitMs: number): { result: Promise<Received>; headSeen: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let headSeen!: () => void;
  const head = new Promise<void>((r) => (headSeen = r));
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    if (Buffer.concat(chunks).includes('\r\n\r\n')) headSeen();
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
  const result = new Promise<Received>((resolve) => {
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const headText = end < 0 ? all.toString('latin1') : all.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1] ?? 0);
      const contentLength = Number(/\r\ncontent-length: *(\d+)/i.exec(headText)?.[1] ?? -1);
      const rest = end < 0 ? Buffer.alloc(0) : all.subarray(end + 4);
      const bodyLength = contentLength < 0 ? rest.length : Math.min(rest.length, contentLength);
      resolve({ status, contentLength, body: rest.subarray(0, bodyLength), after: rest.subarray(bodyLength), closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.once('end', () => finish(true));
    socket.once('error', () => finish(true));
    socket.once('close', () => finish(true));
  });
  return { result, headSeen: head };
}

/**
 * A chunked PUT on a raw socket: each of `chunks` as one HTTP chunk, `gapMs` apart, then the last
 * chunk (`ending: 'end'`) or a closed socket mid-body (`'vanish'`). Resolves with the status line
 * of the answer ('' when none came).
 */
function rawChunkedPut(port: number, path: string, headers: Record<string, string>, chunks: Buffer[], ending: 'end' | 'vanish', gapMs = 100): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(answer.split('\r\n')[0] ?? '');
    };
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n\r\n')) setTimeout(finish, 50);
    });
    socket.once('error', finish);
    socket.once('close', finish);
    socket.once('connect', async () => {
      socket.write(
        `PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`,
      );
      for (const c of chunks) {
        await new Promise((r) => setTimeout(r, gapMs));
        if (done) return;
        socket.write(`${c.length.toString(16)}\r\n`);
        socket.write(c);
        socket.write('\r\n');
      }
      await new Promise((r) => setTimeout(r, gapMs));
      if (ending === 'end') socket.write('0\r\n\r\n');
      else finish();
    });
    setTimeout(finish, 10_000).unref();
  });
}

/** A response of the sender's choosing, as it would be read on the receiver's keep-alive connection. */
const SMUGGLED = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 25\r\n\r\n<script>alert(1)</script>');

interface Api {
  (path: string, init?: { method?: string; headers?: Record<string, string>; json?: unknown }): Promise<Response>;
}
const apiOf =
  (base: string): Api =>
  (path, init = {}) =>
    fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: { ...init.headers, ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.json !== undefined ? JSON.stringify(init.json) : undefined,
    });

async function json<T>(res: Promise<Response>, status = 200): Promise<T> {
  const r = await res;
  const text = await r.text();
  assert.equal(r.status, status, text);
  return JSON.parse(text) as T;
}

async function registerDevice(api: Api, token: string, name: string) {
  return json<{ device: { id: string }; token: string }>(api('/devices', { method: 'POST', headers: bearer(token), json: { name } }), 201);
}

describe('the relay delivers exactly the offered bytes or cuts the receiver', () => {
  let stack: ServerWithRedis;
  let server: TestServer;
  let api: Api;
  let alice: string;

  before(async () => {
    stack = await startServerWithRedis({
      NONDIVY_RELAY_WAIT_SECONDS: '5',
      NONDIVY_OFFERS_PENDING_PER_SENDER: '3',
      NONDIVY_OFFERS_PENDING_PER_RECEIVER: '5',
      NONDIVY_OFFER_MAX_FILES: '50',
      NONDIVY_OFFER_MAX_BYTES: '8192',
    });
    server = stack.server;
    api = apiOf(server.api);
    const admin = await login(server.api, 'admin', 'admin-password');
    assert.equal((await api('/users', { method: 'POST', headers: bearer(admin), json: { username: 'alice', password: 'alice-password' } })).status, 201);
    alice = await login(server.api, 'alice', 'alice-password');
  });
  after(() => stack?.close());

  /** Two devices and an accepted offer of one file of `bytes`. */
  const accepted = async (bytes: Buffer) => {
    const sender = await registerDevice(api, alice, `sender-${randomBytes(3).toString('hex')}`);
    const receiver = await registerDevice(api, alice, `receiver-${randomBytes(3).toString('hex')}`);
    const t = await json<Transfer>(api('/transfers', { method: 'POST', headers: dev(sender.token), json: { from: sender.device.id, to: receiver.device.id, files: [{ name: 'f.bin', size: bytes.length, sha256: sha(bytes) }] } }), 201);
    await json(api(`/transfers/${t.id}/accept`, { method: 'POST', headers: dev(receiver.token), json: {} }));
    return { t, sender, receiver, path: `/api/v1/transfers/${t.id}/files/0` };
  };

  it('a chunked sender with more bytes than offered: the receiver gets Content-Length = the offer, nothing after it, and a closed connection; the sender gets 413', async (ctx) => {
    const bytes = randomBytes(64 * 1024);
    // The extra bytes come as their own chunk, after the whole offered body, and together with it.
    for (const chunks of [[bytes, SMUGGLED], [Buffer.concat([bytes, SMUGGLED])]]) {
      const { t, sender, receiver, path } = await accepted(bytes);
      const got = rawGet(server.port, path, dev(receiver.token), CUT_WITHIN_MS);
      await new Promise((r) => setTimeout(r, 150));
      const answer = await rawChunkedPut(server.port, path, dev(sender.token), chunks, 'end');
      const r = await got.result;
      ctx.diagnostic(`${chunks.length} chunk(s): the receiver got ${r.body.length} of ${r.contentLength} announced bytes, ${r.after.length} after them, connection ${r.closed ? 'closed' : 'open'}; the sender: ${answer}`);
      assert.equal(r.status, 200);
      assert.equal(r.contentLength, bytes.length, 'the announced length is the offered size');
      assert.equal(r.after.length, 0, `nothing after the announced body (got ${r.after.length} bytes: ${r.after.toString('latin1').slice(0, 40)})`);
      assert.ok(r.body.equals(bytes.subarray(0, r.body.length)), 'what came is the start of the offered bytes');
      assert.ok(r.closed, 'the connection is closed, not kept alive for a next response');
      assert.match(answer, /^HTTP\/1\.1 413 /);
      const after = await json<Transfer>(api(`/transfers/${t.id}`, { headers: dev(sender.token) }));
      assert.equal(after.state, 'failed');
      assert.match(after.reason ?? '', /More bytes than offered/);
    }
  });

  it('a chunked sender that ends short, or vanishes mid-body: the receiver is cut off within seconds (no hang, no clean end); a short sender gets 400', async () => {
    const bytes = randomBytes(64 * 1024);
    for (const ending of ['end', 'vanish'] as const) {
      const { path, sender, receiver } = await accepted(bytes);
      const got = rawGet(server.port, path, dev(receiver.token), CUT_WITHIN_MS);
      await new Promise((r) => setTimeout(r, 150));
      const t0 = Date.now();
      const answer = await rawChunkedPut(server.port, path, dev(sender.token), [bytes.subarray(0, 40_000)], ending);
      const r = await got.result;
      assert.equal(r.status, 200);
      assert.equal(r.contentLength, bytes.length);
      assert.ok(r.closed, `${ending}: the receiver's connection is closed (still open after ${CUT_WITHIN_MS} ms)`);
      assert.ok(Date.now() - t0 < CUT_WITHIN_MS);
      assert.ok(r.body.length < bytes.length, `${ending}: the receiver can tell the body is short`);
      assert.equal(r.after.length, 0);
      if (ending === 'end') assert.match(answer, /^HTTP\/1\.1 400 /);
    }
  });

  it('a sender with exactly the offered bytes (chunked) still gets through, and the receiver\'s connection stays usable', async () => {
    const bytes = randomBytes(100_000);
    const { path, sender, receiver } = await accepted(bytes);
    const got = rawGet(server.port, path, dev(receiver.token), 1500);
    await new Promise((r) => setTimeout(r, 150));
    const answer = await rawChunkedPut(server.port, path, dev(sender.token), [bytes.subarray(0, 30_000), bytes.subarray(30_000)], 'end');
    assert.match(answer, /^HTTP\/1\.1 204 /);
    const r = await got.result;
    assert.equal(r.contentLength, bytes.length);
    assert.ok(r.body.equals(bytes));
    assert.equal(r.after.length, 0);
    assert.equal(r.closed, false, 'a good transfer leaves the keep-alive connection open');
  });

  it('open offers are capped per sender and per receiver (429 with a problem detail); the slots free as offers are answered', async () => {
    const file = [{ name: 'a.txt', size: 1, sha256: sha(Buffer.from('a')) }];
    const [s1, s2, s3, r] = await Promise.all(['s1', 's2', 's3', 'r'].map((n) => registerDevice(api, alice, `cap-${n}`)));
    const offer = (s: { device: { id: string }; token: string }) => api('/transfers', { method: 'POST', headers: dev(s.token), json: { from: s.device.id, to: r!.device.id, files: file } });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await json<Transfer>(offer(s1!), 201)).id);
    const full = await offer(s1!);
    assert.equal(full.status, 429);
    assert.match(full.headers.get('content-type') ?? '', /problem\+json/);
    const problem = (await full.json()) as { status: number; detail: string };
    assert.equal(problem.status, 429);
    assert.match(problem.detail, /sending device already has 3 open offers/);
    // Withdrawing one frees its slot.
    await json(api(`/transfers/${ids[0]}`, { method: 'DELETE', headers: dev(s1!.token), json: {} }));
    ids[0] = (await json<Transfer>(offer(s1!), 201)).id;
    // The receiver: 3 from s1 and 2 from s2 fill its 5; a third sender is refused.
    await json(offer(s2!), 201);
    await json(offer(s2!), 201);
    const inboxFull = await offer(s3!);
    assert.equal(inboxFull.status, 429);
    assert.match(((await inboxFull.json()) as { detail: string }).detail, /receiving device already has 5 open offers/);
    // An answered offer frees a slot of the receiver too.
    await json(api(`/transfers/${ids[1]}/reject`, { method: 'POST', headers: dev(r!.token), json: {} }));
    await json(offer(s3!), 201);
  });

  it('an offer with more files than allowed, or too large a file list, is refused with 413', async () => {
    const [s, r] = await Promise.all(['s', 'r'].map((n) => registerDevice(api, alice, `size-${n}`)));
    const files = (n: number, nameLength = 8) => Array.from({ length: n }, (_, i) => ({ name: `${String(i).padStart(nameLength, 'x')}`, size: 1, sha256: sha(Buffer.from(String(i))) }));
    const offer = (f: unknown[]) => api('/transfers', { method: 'POST', headers: dev(s!.token), json: { from: s!.device.id, to: r!.device.id, files: f } });
    const many = await offer(files(51));
    assert.equal(many.status, 413);
    assert.match(((await many.json()) as { detail: string }).detail, /at most 50 files/);
    const long = await offer(files(10, 900));
    assert.equal(long.status, 413);
    assert.match(((await long.json()) as { detail: string }).detail, /at most 8192 bytes/);
    await json(offer(files(50)), 201);
  });

  it('GET /transfers answers a page at a time (20 by default), newest first, with a cursor to follow, and a state filter', async () => {
    const [s, r] = await Promise.all(['s', 'r'].map((n) => registerDevice(api, alice, `page-${n}`)));
    const file = [{ name: 'a.txt', size: 1, sha256: sha(Buffer.from('a')) }];
    const made: string[] = [];
    // Offered and withdrawn: finished transfers stay listed (for an hour), and are not capped.
    for (let i = 0; i < 23; i++) {
      const t = await json<Transfer>(api('/transfers', { method: 'POST', headers: dev(s!.token), json: { from: s!.device.id, to: r!.device.id, files: file } }), 201);
      made.push(t.id);
      if (i < 22) await json(api(`/transfers/${t.id}`, { method: 'DELETE', headers: dev(s!.token), json: {} }));
    }
    type Page = { transfers: Transfer[]; nextCursor: string | null };
    const first = await json<Page>(api(`/transfers?device=${r!.device.id}`, { headers: dev(r!.token) }));
    assert.equal(first.transfers.length, 20);
    assert.ok(first.nextCursor);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await json<Page>(api(`/transfers?limit=7${cursor ? `&cursor=${cursor}` : ''}`, { headers: dev(r!.token) }));
      assert.ok(page.transfers.length <= 7);
      seen.push(...page.transfers.map((t) => t.id));
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, [...made].reverse(), 'every transfer once, newest first');
    const open = await json<Page>(api('/transfers?state=offered', { headers: dev(r!.token) }));
    assert.deepEqual(open.transfers.map((t) => t.id), [made[22]]);
    assert.equal(open.nextCursor, null);
    assert.equal((await api('/transfers?limit=1000', { headers: dev(r!.token) })).status, 400);
    assert.equal((await api('/transfers?cursor=bm90LWEtY3Vyc29y', { headers: dev(r!.token) })).status, 400);
  });
});

describe('across linked sites, the receiver gets exactly the offered bytes or a cut connection', () => {
  let a: Site;
  let b: Site;
  let work: { path: string; cleanup(): void };

  before(async () => {
    work = tempDir();
    [a, b] = await Promise.all([startSite('Hop A', { NONDIVY_PRESENCE_TTL_SECONDS: '60' }), startSite('Hop B', { NONDIVY_PRESENCE_TTL_SECONDS: '60' })]);
    const invite = await json<{ code: string }>(a.call('/federation/invites', { method: 'POST', token: a.admin }), 201);
    await json(b.call('/federation/links', { method: 'POST', token: b.admin, json: { code: invite.code } }), 201);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    work?.cleanup();
  });

  /** A sender on A, a receiver on B, an accepted offer of `bytes` (seen accepted on A). */
  const acceptedAcross = async (bytes: Buffer) => {
    const sender = await registerDevice(apiOf(a.api), a.admin, `a-${randomBytes(3).toString('hex')}`);
    const receiver = await registerDevice(apiOf(b.api), b.admin, `b-${randomBytes(3).toString('hex')}`);
    const files = [{ name: 'f.bin', size: bytes.length, sha256: sha(bytes) }];
    const t = await json<Transfer>(a.call('/transfers', { method: 'POST', headers: dev(sender.token), json: { from: sender.device.id, to: `${receiver.device.id}@${b.siteId}`, files } }), 201);
    await json(b.call(`/transfers/${t.id}/accept`, { method: 'POST', headers: dev(receiver.token), json: {} }));
    for (let i = 0; i < 100; i++) {
      const seen = await json<Transfer>(a.call(`/transfers/${t.id}`, { headers: dev(sender.token) }));
      if (seen.state === 'accepted') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return { t, sender, receiver, path: `/api/v1/transfers/${t.id}/files/0` };
  };

  it('a chunked sender on A with too many bytes, too few, or vanishing: B\'s receiver never sees a byte beyond the offer, and is cut when short', async () => {
    const bytes = randomBytes(64 * 1024);
    const cases: { name: string; chunks: Buffer[]; ending: 'end' | 'vanish' }[] = [
      { name: 'too many', chunks: [bytes, SMUGGLED], ending: 'end' },
      { name: 'too few', chunks: [bytes.subarray(0, 40_000)], ending: 'end' },
      { name: 'vanished', chunks: [bytes.subarray(0, 40_000)], ending: 'vanish' },
    ];
    for (const c of cases) {
      const { path, sender, receiver } = await acceptedAcross(bytes);
      const got = rawGet(b.port, path, dev(receiver.token), CUT_WITHIN_MS);
      await new Promise((r) => setTimeout(r, 150));
      const answer = await rawChunkedPut(a.port, path, dev(sender.token), c.chunks, c.ending);
      const r = await got.result;
      assert.equal(r.status, 200, c.name);
      assert.equal(r.contentLength, bytes.length, c.name);
      assert.equal(r.after.length, 0, `${c.name}: nothing after the announced body`);
      assert.ok(r.body.equals(bytes.subarray(0, r.body.length)), c.name);
      assert.ok(r.closed, `${c.name}: the receiver's connection is closed`);
      if (c.name !== 'too many') assert.ok(r.body.length < bytes.length, `${c.name}: short`);
      if (c.ending === 'end') assert.doesNotMatch(answer, /^HTTP\/1\.1 204 /, `${c.name}: the sender is not told it worked`);
    }
  });
});
