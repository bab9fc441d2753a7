/**
 * Bad input and hostile clients against the running standalone server: every case gets a clear
 * 4xx, nothing partial is left (no item, no blob, no temp file, no upload lease), and the server
 * keeps serving.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { bearer, curl, login, rawRequest, upload } from './helpers/http.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';

const MiB = 1024 * 1024;
const MAX = 16 * MiB;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

let redis: TestRedis;
let server: TestServer;
let data: { path: string; cleanup(): void };
let token: string;

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}
const blobFiles = () => files(join(data.path, 'blobs', 'objects'));
const tmpFiles = () => files(join(data.path, 'blobs', 'tmp'));
const itemCount = () => Number(redis.cli('zcard', 'nd:items:created'));
const leaseCount = () => Number(redis.cli('zcard', 'nd:uploads'));

/** Asserts that the library is exactly as it was: same items, same blobs, no temp files, no leases. */
async function assertNothingLeft(snapshot: { items: number; blobs: string[] }) {
  // Cleanup after a failed upload may finish just after the answer: give it a moment.
  for (let i = 0; i < 40 && (tmpFiles().length > 0 || leaseCount() > 0); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(itemCount(), snapshot.items, 'no new item');
  assert.deepEqual(blobFiles(), snapshot.blobs, 'no new blob');
  assert.deepEqual(tmpFiles(), [], 'no temp file');
  assert.equal(leaseCount(), 0, 'no upload lease');
}
const snap = () => ({ items: itemCount(), blobs: blobFiles() });

function multipartHead(boundary: string, name = 'file', filename = 'x.bin') {
  return `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
}
function requestHead(length: number | null, boundary: string, extra = '') {
  return (
    `POST /api/v1/library HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: multipart/form-data; boundary=${boundary}\r\n` +
    (length === null ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${length}\r\n`) +
    `${extra}Connection: close\r\n\r\n`
  );
}
async function postMultipart(body: string | Buffer, contentType: string) {
  return fetch(`${server.api}/library`, { method: 'POST', headers: { ...bearer(token), 'content-type': contentType }, body });
}

before(async () => {
  redis = await startRedis();
  data = tempDir();
  server = await startServer({ REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: 'admin-password', NONDIVY_MAX_UPLOAD_BYTES: String(MAX) });
  token = await login(server.api, 'admin', 'admin-password');
});

afterEach(async () => {
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'the server is still serving');
});

after(async () => {
  await server?.stop();
  await redis?.close();
  data?.cleanup();
});

describe('uploads over the size limit', () => {
  it('refuses an announced oversize body with 413 before reading it', async () => {
    const s = snap();
    const file = join(data.path, 'big.bin');
    writeFileSync(file, randomBytes(MAX + MiB));
    const t0 = Date.now();
    const res = curl(['-H', `Authorization: Bearer ${token}`, '-F', `file=@${file}`, `${server.api}/library`]);
    assert.equal(res.status, 413, res.stderr);
    assert.match(res.headers, /content-type: application\/problem\+json/i);
    assert.match(res.body.toString(), /larger than the limit/);
    assert.ok(Date.now() - t0 < 5000);
    rmSync(file);
    await assertNothingLeft(s);
  });

  it('refuses an oversize chunked body (no Content-Length) with 413 once the limit is passed', async () => {
    const s = snap();
    const boundary = 'b0undary';
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(Buffer.from(multipartHead(boundary)));
        if (sent > MAX + 2 * MiB) return controller.close();
        const chunk = randomBytes(MiB);
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${server.api}/library`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
      duplex: 'half',
    } as RequestInit).catch((err: Error) => err);
    if (res instanceof Error) assert.match(String(res.cause ?? res.message), /closed|reset|EPIPE|socket/i);
    else assert.equal(res.status, 413);
    await assertNothingLeft(s);
  });
});

describe('malformed multipart', () => {
  const cases: [string, () => Promise<Response>, number[]][] = [
    ['garbage body', () => postMultipart('this is not multipart at all', 'multipart/form-data; boundary=abc'), [400]],
    ['no boundary', () => postMultipart('x', 'multipart/form-data'), [400]],
    ['300-byte boundary', () => { const b = 'b'.repeat(300); return postMultipart(`${multipartHead(b)}hello\r\n--${b}--\r\n`, `multipart/form-data; boundary=${b}`); }, [400]],
    ['truncated body', () => postMultipart(`${multipartHead('abc')}${'x'.repeat(5000)}`, 'multipart/form-data; boundary=abc'), [400]],
    ['no file part', () => postMultipart('--abc\r\nContent-Disposition: form-data; name="title"\r\n\r\nT\r\n--abc--\r\n', 'multipart/form-data; boundary=abc'), [400]],
    ['a part named __proto__', () => postMultipart(`--abc\r\nContent-Disposition: form-data; name="__proto__"\r\n\r\n{"polluted":1}\r\n${multipartHead('abc')}hi\r\n--abc--\r\n`, 'multipart/form-data; boundary=abc'), [400]],
    ['a file under another name', () => postMultipart(`${multipartHead('abc', 'other')}hi\r\n--abc--\r\n`, 'multipart/form-data; boundary=abc'), [400]],
    ['two files', () => postMultipart(`${multipartHead('abc')}one\r\n${multipartHead('abc')}two\r\n--abc--\r\n`, 'multipart/form-data; boundary=abc'), [400, 413]],
    ['too many fields', () => postMultipart(Array.from({ length: 30 }, (_, i) => `--abc\r\nContent-Disposition: form-data; name="title${i}"\r\n\r\nv\r\n`).join('') + '--abc--\r\n', 'multipart/form-data; boundary=abc'), [400, 413]],
    ['a huge field', () => postMultipart(`--abc\r\nContent-Disposition: form-data; name="description"\r\n\r\n${'d'.repeat(100_000)}\r\n${multipartHead('abc')}hi\r\n--abc--\r\n`, 'multipart/form-data; boundary=abc'), [400, 413]],
    ['a bad kind', () => postMultipart(`--abc\r\nContent-Disposition: form-data; name="kind"\r\n\r\nweapon\r\n${multipartHead('abc')}hi\r\n--abc--\r\n`, 'multipart/form-data; boundary=abc'), [400]],
    ['a field given twice', () => postMultipart(`--abc\r\nContent-Disposition: form-data; name="title"\r\n\r\nA\r\n--abc\r\nContent-Disposition: form-data; name="title"\r\n\r\nB\r\n${multipartHead('abc')}hi\r\n--abc--\r\n`, 'multipart/form-data; boundary=abc'), [400]],
    ['JSON instead of multipart', () => fetch(`${server.api}/library`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{}' }), [400]],
  ];
  for (const [name, send, statuses] of cases) {
    it(`answers ${statuses.join('/')} to ${name} and keeps nothing`, async () => {
      const s = snap();
      const res = await send();
      assert.ok(statuses.includes(res.status), `${name}: got ${res.status} ${await res.clone().text()}`);
      const problem = (await res.json()) as { status: number; detail: string };
      assert.equal(problem.status, res.status);
      assert.ok(problem.detail && !/\/tmp|\/blobs\/|at .*\.ts/.test(problem.detail), `safe detail: ${problem.detail}`);
      await assertNothingLeft(s);
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    });
  }
});

describe('hostile JSON and parameters', () => {
  const postJson = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${server.api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  it('refuses oversized, malformed and prototype-polluting JSON', async () => {
    assert.equal((await postJson('/auth/login', JSON.stringify({ username: 'a', password: 'x'.repeat(200_000) }))).status, 413);
    assert.equal((await postJson('/auth/login', '{"username": "a", "password": ')).status, 400);
    assert.equal((await postJson('/auth/login', '{"__proto__": {"admin": true}, "username": "a", "password": "b"}')).status, 400);
    assert.equal((await postJson('/auth/login', '{"constructor": {"prototype": {"admin": true}}, "username": "a", "password": "b"}')).status, 400);
    assert.equal((await postJson('/users', '{"username":"x","password":"12345678","role":"admin","__proto__":{"role":"admin"}}', bearer(token))).status, 400);
    assert.equal((await postJson('/auth/login', '[]')).status, 400);
  });

  it('refuses invalid ids and ranges sensibly', async () => {
    const up = await upload(server.api, token, Buffer.from('0123456789'), 'ten.txt');
    const { id } = (await up.json()) as { id: string };
    const url = `${server.api}/library/${id}/content`;
    const range = async (r: string) => {
      const res = await fetch(url, { headers: { range: r } });
      await res.body?.cancel();
      return res.status;
    };
    assert.equal(await range('bytes=10-'), 416);
    assert.equal(await range('bytes=5-2'), 200, 'an invalid range is ignored');
    assert.equal(await range('bytes=abc'), 200);
    assert.equal(await range('items=0-1'), 200);
    assert.equal(await range(`bytes=${Array.from({ length: 500 }, () => '0-1').join(',')}`), 200, 'too many ranges: the whole file');
    assert.equal(await range('bytes=0-1,3-4,6-7'), 206);
    assert.equal((await fetch(`${server.api}/library/!!!/content`)).status, 400);
    await fetch(`${server.api}/library/${id}`, { method: 'DELETE', headers: bearer(token) });
  });
});

describe('clients that go away, races', () => {
  it('a client that disconnects halfway through an upload leaves nothing', async () => {
    const s = snap();
    const boundary = 'cut';
    const head = multipartHead(boundary);
    const total = 8 * MiB;
    await rawRequest(server.port, [requestHead(head.length + total + 20, boundary), head, randomBytes(3 * MiB)], { destroyAfterSend: true });
    await assertNothingLeft(s);
    // And the same with a chunked body that stops mid-chunk.
    const chunkHead = `${(MiB).toString(16)}\r\n`;
    await rawRequest(server.port, [requestHead(null, boundary), `${head.length.toString(16)}\r\n${head}\r\n`, chunkHead, randomBytes(MiB / 2)], { destroyAfterSend: true });
    await assertNothingLeft(s);
  });

  it('two uploads of the same bytes at once: two items, one blob', async () => {
    const s = snap();
    const bytes = randomBytes(3 * MiB);
    const [a, b] = await Promise.all([upload(server.api, token, bytes, 'a.bin'), upload(server.api, token, bytes, 'b.bin')]);
    assert.deepEqual([a.status, b.status], [201, 201]);
    const [ia, ib] = (await Promise.all([a.json(), b.json()])) as { id: string; sha256: string }[];
    assert.notEqual(ia!.id, ib!.id);
    assert.equal(ia!.sha256, sha(bytes));
    assert.equal(blobFiles().length, s.blobs.length + 1);
    assert.equal(itemCount(), s.items + 2);
    // Deleting one keeps the other's bytes.
    assert.equal((await fetch(`${server.api}/library/${ia!.id}`, { method: 'DELETE', headers: bearer(token) })).status, 204);
    const back = Buffer.from(await (await fetch(`${server.api}/library/${ib!.id}/content`)).arrayBuffer());
    assert.equal(sha(back), sha(bytes));
    assert.equal((await fetch(`${server.api}/library/${ib!.id}`, { method: 'DELETE', headers: bearer(token) })).status, 204);
    await assertNothingLeft(s);
  });

  it('a download during a delete gets the complete bytes, and the next one a clean 404', async () => {
    const bytes = randomBytes(12 * MiB);
    const { id } = (await (await upload(server.api, token, bytes, 'movie.mkv')).json()) as { id: string };
    const res = await fetch(`${server.api}/library/${id}/content`);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const parts: Uint8Array[] = [];
    const first = await reader.read();
    parts.push(first.value!);
    assert.equal((await fetch(`${server.api}/library/${id}`, { method: 'DELETE', headers: bearer(token) })).status, 204);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
    }
    assert.equal(sha(Buffer.concat(parts)), sha(bytes));
    const after = await fetch(`${server.api}/library/${id}/content`);
    assert.equal(after.status, 404);
    assert.equal(after.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  });
});
