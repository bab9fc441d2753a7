/**
 * The REST library end to end: the standalone server as a child process (as `npm start` runs it),
 * a real Redis, real HTTP clients (fetch and curl).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bearer, curl, login, upload } from './helpers/http.js';
import { startServerWithRedis, type ServerWithRedis, type TestServer } from './helpers/server.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
const ADMIN_PASSWORD = 'correct-horse-battery';

let stack: ServerWithRedis;
let server: TestServer;
let admin: string;
let member: string;

before(async () => {
  stack = await startServerWithRedis({
    NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD,
    NONDIVY_LOGIN_MAX_FAILURES: '4',
    NONDIVY_LOGIN_LOCK_SECONDS: '3',
  });
  server = stack.server;
  admin = await login(server.api, 'admin', ADMIN_PASSWORD);
  const res = await fetch(`${server.api}/users`, {
    method: 'POST',
    headers: { ...bearer(admin), 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
  });
  assert.equal(res.status, 201);
  member = await login(server.api, 'alice', 'alice-password');
});

after(() => stack?.close());

describe('service endpoints', () => {
  it('answers /healthz, /readyz, /metrics and serves the OpenAPI document and docs page', async () => {
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(((await ready.json()) as { checks: unknown }).checks, { redis: { ok: true }, blobs: { ok: true } });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /http_requests_total\{/);
    assert.match(metrics, /process_resident_memory_bytes/);
    const docs = await fetch(`${server.url}/docs`, { redirect: 'follow' });
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger/i);
    const spec = (await (await fetch(`${server.url}/docs/json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.match(spec.openapi, /^3\./);
    for (const path of ['/api/v1/library', '/api/v1/library/{id}', '/api/v1/library/{id}/content', '/api/v1/auth/login', '/api/v1/users', '/api/v1/me']) {
      assert.ok(spec.paths[path], `OpenAPI documents ${path}`);
    }
    assert.ok(spec.paths['/api/v1/auth/login']!.post, 'login is a POST');
  });

  it('answers unknown routes with problem+json 404', async () => {
    const res = await fetch(`${server.api}/nope`);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  });
});

describe('accounts', () => {
  it('tells who is logged in, and refuses bad tokens and guests', async () => {
    const me = (await (await fetch(`${server.api}/me`, { headers: bearer(member) })).json()) as { username: string; role: string };
    assert.deepEqual([me.username, me.role], ['alice', 'member']);
    assert.equal((await fetch(`${server.api}/me`)).status, 401);
    const bad = await fetch(`${server.api}/me`, { headers: bearer('x'.repeat(43)) });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  });

  it('lets only admins create accounts, with valid and unique names', async () => {
    const post = (token: string, body: unknown) =>
      fetch(`${server.api}/users`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post(member, { username: 'mallory', password: 'whatever-pass' })).status, 403);
    assert.equal((await post(admin, { username: 'alice', password: 'whatever-pass' })).status, 409);
    const invalid = await post(admin, { username: '../x', password: 'short' });
    assert.equal(invalid.status, 400);
    const problem = (await invalid.json()) as { errors: { path: string }[] };
    assert.deepEqual(problem.errors.map((e) => e.path).sort(), ['body.password', 'body.username']);
  });
});

describe('upload, browse, fetch', () => {
  it('uploads with curl -F and returns the item', () => {
    const file = join(stack.data.path, 'book.epub');
    const bytes = randomBytes(200_000);
    writeFileSync(file, bytes);
    const res = curl(['-H', `Authorization: Bearer ${member}`, '-F', `file=@${file}`, '-F', 'title=Dune', '-F', 'kind=ebook', '-F', 'tags=scifi,Classic', `${server.api}/library`]);
    assert.equal(res.status, 201, res.stderr);
    const item = JSON.parse(res.body.toString()) as Record<string, unknown>;
    assert.equal(item.title, 'Dune');
    assert.equal(item.kind, 'ebook');
    assert.deepEqual(item.tags, ['scifi', 'classic']);
    assert.equal(item.filename, 'book.epub');
    assert.equal(item.contentType, 'application/epub+zip');
    assert.equal(item.size, bytes.length);
    assert.equal(item.sha256, sha(bytes));
    assert.equal(item.uploadedBy, 'alice');
    assert.match(String(item.createdAt), /^\d{4}-\d\d-\d\dT/);
    assert.match(res.headers, new RegExp(`location: /api/v1/library/${item.id}`, 'i'));
    assert.equal('blobKey' in item, false, 'internal keys never leave the server');
  });

  it('refuses guest uploads by default, before reading the body', async () => {
    const res = await upload(server.api, null, randomBytes(10), 'x.bin');
    assert.equal(res.status, 401);
  });

  it('guesses kind and title when not given, and pages newest first without duplicates', async () => {
    const ids: string[] = [];
    for (const name of ['song.mp3', 'clip.mp4', 'photo.png', 'tool.deb', 'paper.pdf']) {
      const res = await upload(server.api, member, randomBytes(100), name, {}, '');
      assert.equal(res.status, 201);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const kinds = await Promise.all(ids.map(async (id) => ((await (await fetch(`${server.api}/library/${id}`)).json()) as { kind: string }).kind));
    assert.deepEqual(kinds, ['audio', 'video', 'image', 'software', 'document']);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : '';
      const page = (await (await fetch(`${server.api}/library?limit=2${q}`)).json()) as { items: { id: string }[]; nextCursor: string | null };
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, 'no duplicates across pages');
    assert.deepEqual(seen.slice(0, 5), [...ids].reverse(), 'newest first');
  });

  it('rejects bad browse parameters with 400, never 500', async () => {
    for (const q of ['limit=-1', 'limit=1e9', 'limit=abc', 'cursor=forged', `cursor=${Buffer.from('[1,"../../x"]').toString('base64url')}`, 'nope=1']) {
      const res = await fetch(`${server.api}/library?${q}`);
      assert.equal(res.status, 400, q);
    }
    for (const id of ['x', '../../etc/passwd', 'A'.repeat(300), '%00']) {
      const status = (await fetch(`${server.api}/library/${encodeURIComponent(id)}`)).status;
      assert.ok(status === 400 || (status === 414 && id.length > 200), `${id}: ${status}`);
    }
    assert.equal((await fetch(`${server.api}/library/${'A'.repeat(22)}`)).status, 404);
  });
});

describe('content: ranges, validators, dispositions', () => {
  const bytes = randomBytes(1024 * 1024 + 333);
  let id: string;
  let url: string;

  before(async () => {
    const res = await upload(server.api, member, bytes, 'movie.mp4', { title: 'Movie' }, 'video/mp4');
    id = ((await res.json()) as { id: string }).id;
    url = `${server.api}/library/${id}/content`;
  });

  it('serves the whole file with ETag, length and an inline disposition for media', async () => {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('etag'), `"${sha(bytes)}"`);
    assert.equal(res.headers.get('content-length'), String(bytes.length));
    assert.equal(res.headers.get('content-type'), 'video/mp4');
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('content-disposition'), 'inline; filename="movie.mp4"');
    assert.equal(sha(Buffer.from(await res.arrayBuffer())), sha(bytes));
    const dl = await fetch(`${url}?download=1`);
    assert.equal(dl.headers.get('content-disposition'), 'attachment; filename="movie.mp4"');
    await dl.body?.cancel();
  });

  it('answers single ranges with 206, as video players and resumed downloads ask', async () => {
    for (const [range, start, end] of [
      ['bytes=0-99', 0, 99],
      ['bytes=1000-', 1000, bytes.length - 1],
      ['bytes=-500', bytes.length - 500, bytes.length - 1],
      ['bytes=500000-99999999', 500000, bytes.length - 1],
    ] as const) {
      const res = await fetch(url, { headers: { range } });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${bytes.length}`);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes.subarray(start, end + 1)), range);
    }
    // A resumed download with curl -C: the whole file comes together.
    const part = join(stack.data.path, 'resume.part');
    writeFileSync(part, bytes.subarray(0, 400_000));
    const res = curl(['-C', '-', '-o', part, url]);
    assert.equal(res.status, 206);
    assert.match(res.headers, new RegExp(`content-range: bytes 400000-${bytes.length - 1}/${bytes.length}`, 'i'));
    assert.ok(readFileSync(part).equals(bytes), 'the resumed file is the original, byte for byte');
  });

  it('answers several ranges as multipart/byteranges, merging overlaps', async () => {
    const res = await fetch(url, { headers: { range: 'bytes=0-9, 100-109, 5-14' } });
    assert.equal(res.status, 206);
    const type = res.headers.get('content-type')!;
    const boundary = /boundary=(\w+)/.exec(type)![1]!;
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(Number(res.headers.get('content-length')), body.length);
    const text = body.toString('latin1');
    assert.equal(text.split(`--${boundary}`).length - 1, 3, 'two parts and the closing delimiter');
    assert.match(text, /Content-Range: bytes 0-14\/1048909/);
    assert.match(text, /Content-Range: bytes 100-109\/1048909/);
    const first = text.indexOf('\r\n\r\n') + 4;
    assert.ok(body.subarray(first, first + 15).equals(bytes.subarray(0, 15)));
    // Many overlapping ranges collapse to one range, never to many copies of the file.
    const many = Array.from({ length: 40 }, (_, i) => `${i}-${bytes.length - 1}`).join(',');
    const collapsed = await fetch(url, { headers: { range: `bytes=${many}` } });
    assert.equal(collapsed.status, 200);
    assert.equal(Number(collapsed.headers.get('content-length')), bytes.length);
    await collapsed.body?.cancel();
  });

  it('answers 416 past the end, 304 for a matching If-None-Match, and the full file when If-Range fails', async () => {
    const past = await fetch(url, { headers: { range: `bytes=${bytes.length}-` } });
    assert.equal(past.status, 416);
    assert.equal(past.headers.get('content-range'), `bytes */${bytes.length}`);
    const cached = await fetch(url, { headers: { 'if-none-match': `"${sha(bytes)}"` } });
    assert.equal(cached.status, 304);
    const stale = await fetch(url, { headers: { range: 'bytes=0-9', 'if-range': '"0000"' } });
    assert.equal(stale.status, 200);
    await stale.body?.cancel();
    const fresh = await fetch(url, { headers: { range: 'bytes=0-9', 'if-range': `"${sha(bytes)}"` } });
    assert.equal(fresh.status, 206);
    await fresh.body?.cancel();
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(bytes.length));
  });

  it('counts downloads: a GET from the first byte counts once; HEAD, 304, 416 and a resumed range do not', async () => {
    const downloads = async () => ((await (await fetch(`${server.api}/library/${id}`)).json()) as { downloads: number }).downloads;
    const start = await downloads();
    for (const init of [
      {},
      { headers: { range: 'bytes=0-99' } },
      { headers: { range: 'bytes=400000-' } },
      { headers: { range: `bytes=${bytes.length}-` } },
      { headers: { 'if-none-match': `"${sha(bytes)}"` } },
      { method: 'HEAD' },
    ] as RequestInit[]) {
      const res = await fetch(url, init);
      await res.arrayBuffer();
    }
    // Counting is not awaited by the download: wait for the two, then make sure no third comes.
    const t0 = Date.now();
    while ((await downloads()) < start + 2 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await downloads(), start + 2);
  });
});

describe('hostile file names', () => {
  // Each name with the name the library would store instead (null: nothing would be left of it).
  const names: [string, string | null][] = [
    ['../../etc/passwd', 'passwd'],
    ['/abs/path/file.txt', 'file.txt'],
    ['C:\\Windows\\system32\\evil.exe', 'evil.exe'],
    ['nul\u0000byte.txt', 'nulbyte.txt'],
    ['bell\u0007and\u001b[31mansi.txt', 'belland[31mansi.txt'],
    // (browsers and undici send ", CR and LF in a multipart filename as %22, %0D and %0A, as the HTML standard says)
    ['crlf\r\nSet-Cookie: x=1.txt', 'crlfSet-Cookie_ x=1.txt'],
    ['say "hi".txt', 'say _hi_.txt'],
    ['invoice\u202Etxt.exe', 'invoicetxt.exe'],
    ['é'.repeat(150) + '.pdf', 'é'.repeat(125) + '.pdf'],
    ['...', null],
    ['.hidden', 'hidden'],
  ];
  const send = (name: string) => {
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('x')]), name);
    return fetch(`${server.api}/library`, { method: 'POST', body: form, headers: bearer(member) });
  };

  it('refuses a name the library would change (400, naming the accepted name); the accepted name is stored exactly and served in a safe Content-Disposition', async () => {
    const before = (await (await fetch(`${server.api}/library/facets`)).json()) as { total: number };
    for (const [raw, accepted] of names) {
      const res = await send(raw);
      assert.equal(res.status, 400, JSON.stringify(raw));
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      const problem = (await res.json()) as { detail: string; acceptedName?: string };
      assert.equal(problem.acceptedName, accepted ?? undefined, JSON.stringify(raw));
      assert.equal(problem.detail, accepted === null ? 'File name not allowed' : `File name not allowed; "${accepted}" would be`);
    }
    const after = (await (await fetch(`${server.api}/library/facets`)).json()) as { total: number };
    assert.equal(after.total, before.total, 'nothing was stored');
    for (const [raw, accepted] of names) {
      if (accepted === null) continue;
      const res = await send(accepted);
      assert.equal(res.status, 201, JSON.stringify(raw));
      const item = (await res.json()) as { id: string; filename: string };
      assert.equal(item.filename, accepted);
      assert.ok(Buffer.byteLength(item.filename) <= 255);
      const content = await fetch(`${server.api}/library/${item.id}/content`);
      const cd = content.headers.get('content-disposition')!;
      await content.body?.cancel();
      // Header values are ASCII only: the exact name travels percent-encoded in filename*.
      assert.match(cd, /^(inline|attachment); filename="[\x20-\x7e]*"(; filename\*=UTF-8''[A-Za-z0-9%!#$&+.^_`|~-]+)?$/, cd);
    }
    // The raw names never reach the logs.
    const logs = server.rawOutput();
    for (const bad of ['\u202E', '\r\nSet-Cookie', '\u0007', '../../etc/passwd']) assert.ok(!logs.includes(bad), `log free of ${JSON.stringify(bad)}`);
  });

  it('stores a composed (NFC) name for a decomposed one: the one silent change, made by FTP too', async () => {
    const res = await send('Cafe\u0301.txt');
    assert.equal(res.status, 201);
    assert.equal(((await res.json()) as { filename: string }).filename, 'Caf\u00e9.txt');
  });

  it('refuses a rename to a name the library would change, naming the accepted name', async () => {
    const item = (await (await send('rename-me.txt')).json()) as { id: string };
    const patch = (filename: string) =>
      fetch(`${server.api}/library/${item.id}`, { method: 'PATCH', headers: { ...bearer(member), 'content-type': 'application/json' }, body: JSON.stringify({ filename }) });
    const refused = await patch('a:b.txt');
    assert.equal(refused.status, 400);
    assert.equal(((await refused.json()) as { acceptedName?: string }).acceptedName, 'a_b.txt');
    const renamed = await patch('a_b.txt');
    assert.equal(renamed.status, 200);
    assert.equal(((await renamed.json()) as { filename: string }).filename, 'a_b.txt');
  });

  it('keeps the name of a non-ASCII file exactly in filename*', async () => {
    const res = await upload(server.api, member, Buffer.from('x'), 'Война и мир.epub');
    const item = (await res.json()) as { id: string };
    const content = await fetch(`${server.api}/library/${item.id}/content`);
    await content.body?.cancel();
    assert.equal(content.headers.get('content-disposition'), `attachment; filename="download.epub"; filename*=UTF-8''${encodeURIComponent('Война и мир.epub')}`);
  });
});

describe('editing and deleting', () => {
  it('lets the uploader and admins edit and delete, nobody else', async () => {
    await fetch(`${server.api}/users`, { method: 'POST', headers: { ...bearer(admin), 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bob', password: 'bob-password' }) });
    const bob = await login(server.api, 'bob', 'bob-password');
    const item = (await (await upload(server.api, member, Buffer.from('abc'), 'a.txt')).json()) as { id: string };
    const patch = (token: string | null, body: unknown) =>
      fetch(`${server.api}/library/${item.id}`, { method: 'PATCH', headers: { ...(token ? bearer(token) : {}), 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await patch(bob, { title: 'mine now' })).status, 403);
    assert.equal((await patch(null, { title: 'anon' })).status, 401);
    assert.equal((await patch(member, {})).status, 400);
    assert.equal((await patch(member, { size: 1 })).status, 400, 'unknown fields are refused');
    const edited = await patch(member, { title: 'Alphabet', tags: 'x,y', kind: 'document' });
    assert.equal(edited.status, 200);
    assert.deepEqual(((await edited.json()) as { tags: string[] }).tags, ['x', 'y']);
    assert.equal((await patch(admin, { description: 'by admin' })).status, 200);
    const del = (token: string) => fetch(`${server.api}/library/${item.id}`, { method: 'DELETE', headers: bearer(token) });
    assert.equal((await del(bob)).status, 403);
    assert.equal((await del(member)).status, 204);
    assert.equal((await del(member)).status, 404);
    assert.equal((await fetch(`${server.api}/library/${item.id}/content`)).status, 404);
  });
});

describe('login throttling (runs last: it locks this client address out for a moment)', () => {
  it('slows wrong passwords, then refuses with 429 and Retry-After, then lets the right one in after the lock', async () => {
    const attempt = () => fetch(`${server.api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'wrong-password' }) });
    const t0 = Date.now();
    const first = await attempt();
    assert.equal(first.status, 401);
    assert.ok(Date.now() - t0 >= 200, 'a failed login is answered slowly');
    assert.equal((await attempt()).status, 401);
    assert.equal((await attempt()).status, 401);
    const locked = await attempt();
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    const evenRight = await fetch(`${server.api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice-password' }) });
    assert.equal(evenRight.status, 429, 'locked out whatever the password');
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(typeof (await login(server.api, 'alice', 'alice-password')), 'string');
  });
});

describe('live events', () => {
  /** Reads server-sent events from a fetch body until `count` events arrived or `ms` passed. */
  async function readEvents(res: Response, count: number, ms = 5000) {
    const reader = res.body!.getReader();
    const events: { id: string; event: string; data: { type: string; id: string } }[] = [];
    let text = '';
    const deadline = Date.now() + ms;
    while (events.length < count && Date.now() < deadline) {
      const chunk = await Promise.race([reader.read(), new Promise<null>((r) => setTimeout(() => r(null), deadline - Date.now()))]);
      if (!chunk || chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
      let i: number;
      while ((i = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, i);
        text = text.slice(i + 2);
        const fields = Object.fromEntries(block.split('\n').filter((l) => /^(id|event|data):/.test(l)).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
        if (fields.event) events.push({ id: fields.id!, event: fields.event, data: JSON.parse(fields.data!) });
      }
    }
    await reader.cancel();
    return events;
  }

  it('streams item changes to connected clients, and replays what a reconnecting client missed', async () => {
    const stream = await fetch(`${server.api}/events`);
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type')!, /^text\/event-stream/);
    await new Promise((r) => setTimeout(r, 200));
    const item = (await (await upload(server.api, member, Buffer.from('live'), 'live.txt')).json()) as { id: string };
    await fetch(`${server.api}/library/${item.id}`, { method: 'PATCH', headers: { ...bearer(member), 'content-type': 'application/json' }, body: '{"title":"Live!"}' });
    const live = await readEvents(stream, 2);
    assert.deepEqual(live.map((e) => [e.event, e.data.id]), [['item.created', item.id], ['item.updated', item.id]]);

    // While disconnected, the item is deleted; reconnecting with Last-Event-ID brings that event.
    await fetch(`${server.api}/library/${item.id}`, { method: 'DELETE', headers: bearer(member) });
    const again = await fetch(`${server.api}/events`, { headers: { 'last-event-id': live[1]!.id } });
    const missed = await readEvents(again, 1);
    assert.deepEqual(missed.map((e) => [e.event, e.data.id]), [['item.deleted', item.id]]);
  });
});
