/**
 * The raw-body upload (POST /api/v1/library with Content-Type application/octet-stream, the fields in
 * the query string) against the running standalone server: curl uploads byte-exact with every field
 * as a multipart upload gives them; bad fields, names and sizes are refused in words before a byte is
 * stored; a body over the limit or cut short by its client leaves nothing (no item, blob, temp file
 * or upload lease); guests are refused unless guest uploads are on. A multipart upload with a
 * Content-Length is parsed the same way, off the socket (a chunked one through @fastify/multipart).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { bearer, curl, login, rawRequest } from './helpers/http.js';
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
const snap = () => ({ items: itemCount(), blobs: blobFiles() });

async function assertNothingLeft(snapshot: { items: number; blobs: string[] }) {
  for (let i = 0; i < 40 && (tmpFiles().length > 0 || leaseCount() > 0); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(itemCount(), snapshot.items, 'no new item');
  assert.deepEqual(blobFiles(), snapshot.blobs, 'no new blob');
  assert.deepEqual(tmpFiles(), [], 'no temp file');
  assert.equal(leaseCount(), 0, 'no upload lease');
}

const rawPost = (query: string, body: Buffer | string, headers: Record<string, string> = bearer(token)) =>
  fetch(`${server.api}/library?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', ...headers }, body });

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

describe('raw-body upload', () => {
  it('curl uploads a file byte-exact with its fields, as multipart would', async () => {
    const bytes = randomBytes(5 * MiB + 123);
    const file = join(data.path, 'raw.bin');
    writeFileSync(file, bytes);
    const query = new URLSearchParams({ filename: 'Kind of Blue.flac', title: 'So What', kind: 'audio', tags: 'jazz, modal', description: 'Side A', folder: 'Miles Davis', filetype: 'audio/flac' });
    const res = curl(['-X', 'POST', '-T', file, '-H', 'content-type: application/octet-stream', '-H', `authorization: Bearer ${token}`, `${server.api}/library?${query}`]);
    assert.equal(res.status, 201, res.body.toString());
    const item = JSON.parse(res.body.toString()) as { id: string; size: number; sha256: string; title: string; kind: string; tags: string[]; description: string; folder: string; filename: string; contentType: string; path: string };
    assert.equal(item.size, bytes.length);
    assert.equal(item.sha256, sha(bytes));
    assert.deepEqual(
      { title: item.title, kind: item.kind, tags: item.tags, description: item.description, folder: item.folder, filename: item.filename, contentType: item.contentType, path: item.path },
      { title: 'So What', kind: 'audio', tags: ['jazz', 'modal'], description: 'Side A', folder: 'Miles Davis', filename: 'Kind of Blue.flac', contentType: 'audio/flac', path: '/library/audio/Miles Davis/Kind of Blue.flac' },
    );
    const content = Buffer.from(await (await fetch(`${server.api}/library/${item.id}/content`)).arrayBuffer());
    assert.ok(content.equals(bytes), 'the bytes read back are the bytes sent');
    assert.match(res.headers, new RegExp(`location: /api/v1/library/${item.id}`, 'i'));
    // The body was read off the socket rather than through Node's parser: the connection is not reused.
    assert.match(res.headers, /^connection: close/im);
  });

  it('takes a relative path as a folder upload does, and an empty file', async () => {
    const res = await rawPost(new URLSearchParams({ filename: '01.txt', path: 'Album/CD1/01.txt', kind: 'document' }).toString(), Buffer.from('one'));
    assert.equal(res.status, 201, await res.clone().text());
    const item = (await res.json()) as { folder: string; filename: string };
    assert.deepEqual([item.folder, item.filename], ['Album/CD1', '01.txt']);
    const empty = await rawPost('filename=empty.txt', '');
    assert.equal(empty.status, 201, await empty.clone().text());
    assert.equal(((await empty.json()) as { size: number }).size, 0);
  });

  const refusals: [string, string, RegExp][] = [
    ['no filename', 'title=x', /filename/],
    ['an empty filename', 'filename=', /filename/],
    ['an unknown field', 'filename=a.txt&colour=red', /Invalid upload fields/],
    ['a field given twice', 'filename=a.txt&title=A&title=B', /given twice/],
    ['the filename given twice', 'filename=a.txt&filename=b.txt', /given twice/],
    ['a bad kind', 'filename=a.txt&kind=weapon', /Invalid upload fields/],
    ['a name with a slash', `filename=${encodeURIComponent('../etc/passwd')}`, /./],
    ['a folder going up', `filename=a.txt&folder=${encodeURIComponent('../x')}`, /./],
    ['a path whose last name is not the filename', `filename=a.txt&path=${encodeURIComponent('A/b.txt')}`, /not the name the file was sent with/],
    ['a prototype-polluting field', 'filename=a.txt&__proto__=x', /./],
  ];
  for (const [name, query, detail] of refusals) {
    it(`refuses ${name} with 400 before storing a byte`, async () => {
      const s = snap();
      const res = await rawPost(query, randomBytes(64 * 1024));
      assert.equal(res.status, 400, await res.clone().text());
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      // The detail, or the field errors listed with it, say what is wrong.
      assert.match(JSON.stringify(await res.json()), detail);
      await assertNothingLeft(s);
    });
  }

  it('refuses other body types in words', async () => {
    const res = await fetch(`${server.api}/library?filename=a.txt`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'text/plain' }, body: 'hello' });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { detail: string }).detail, /application\/octet-stream/);
  });

  it('refuses a guest (guest uploads off) with 401, keeping nothing', async () => {
    const s = snap();
    const res = await rawPost('filename=a.txt', 'hello', {});
    assert.equal(res.status, 401);
    await assertNothingLeft(s);
  });

  it('refuses an announced oversize body with 413 before reading it', async () => {
    const s = snap();
    const res = await rawRequest(server.port, [
      `POST /api/v1/library?filename=big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${MAX + 1}\r\nConnection: close\r\n\r\n`,
    ]);
    assert.match(res, /^HTTP\/1\.1 413/);
    assert.match(res, /larger than the limit/);
    await assertNothingLeft(s);
  });

  it('refuses a chunked body over the limit with 413 once the limit is passed, keeping nothing', async () => {
    const s = snap();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > MAX + 2 * MiB) return controller.close();
        const chunk = randomBytes(MiB);
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${server.api}/library?filename=big.bin`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/octet-stream' },
      body,
      duplex: 'half',
    } as RequestInit).catch((err: Error) => err);
    if (res instanceof Error) assert.match(String(res.cause ?? res.message), /closed|reset|EPIPE|socket/i);
    else assert.equal(res.status, 413);
    await assertNothingLeft(s);
  });

  it('a client that goes away halfway leaves nothing', async () => {
    const s = snap();
    await rawRequest(
      server.port,
      [`POST /api/v1/library?filename=cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${8 * MiB}\r\nConnection: close\r\n\r\n`, randomBytes(3 * MiB)],
      { destroyAfterSend: true },
    );
    await assertNothingLeft(s);
  });
});

describe('multipart upload read off the socket', () => {
  const fields = { title: 'So What', kind: 'audio', tags: 'jazz, modal', folder: 'Miles Davis' };
  const form = (file: string, name = 'Kind of Blue.flac') => [...Object.entries(fields).flatMap(([k, v]) => ['-F', `${k}=${v}`]), '-F', `file=@${file};filename=${name};type=audio/flac`];

  it('curl -F (a Content-Length body) is parsed where it lands, byte-exact; a chunked one goes through @fastify/multipart to the same item', async () => {
    // File bytes full of the delimiter's beginnings: what must not end the part early, at any batch edge.
    const bytes = randomBytes(6 * MiB + 321);
    for (let at = 0; at + 40 < bytes.length; at += 4093) Buffer.from('\r\n--------------------------').copy(bytes, at, 0, 2 + (at % 20));
    const file = join(data.path, 'form.bin');
    writeFileSync(file, bytes);
    const items: { sha256: string; size: number; title: string; tags: string[]; folder: string; contentType: string; filename: string }[] = [];
    for (const chunked of [false, true]) {
      const res = curl(['-X', 'POST', ...form(file, chunked ? 'Chunked.flac' : 'Kind of Blue.flac'), ...(chunked ? ['-H', 'transfer-encoding: chunked'] : []), '-H', `authorization: Bearer ${token}`, `${server.api}/library`]);
      assert.equal(res.status, 201, res.body.toString());
      items.push(JSON.parse(res.body.toString()));
      // Read off the socket (our parser) the connection is not reused; the chunked body went through Node's parser.
      if (chunked) assert.doesNotMatch(res.headers, /^connection: close/im);
      else assert.match(res.headers, /^connection: close/im);
    }
    for (const item of items) {
      assert.equal(item.size, bytes.length);
      assert.equal(item.sha256, sha(bytes));
      assert.deepEqual([item.title, item.tags, item.folder, item.contentType], ['So What', ['jazz', 'modal'], 'Miles Davis', 'audio/flac']);
    }
    assert.deepEqual(items.map((i) => i.filename), ['Kind of Blue.flac', 'Chunked.flac']);
  });

  it('a bad field after the file discards the staged bytes (400), and a client gone halfway leaves nothing', async () => {
    const s = snap();
    const file = join(data.path, 'form2.bin');
    writeFileSync(file, randomBytes(3 * MiB));
    const res = curl(['-X', 'POST', '-F', `file=@${file};filename=a.bin`, '-F', 'kind=weapon', '-H', `authorization: Bearer ${token}`, `${server.api}/library`]);
    assert.equal(res.status, 400, res.body.toString());
    assert.match(res.body.toString(), /Invalid upload fields/);
    await assertNothingLeft(s);

    const head = `--cut\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n`;
    await rawRequest(
      server.port,
      [`POST /api/v1/library HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=cut\r\nContent-Length: ${8 * MiB}\r\nConnection: close\r\n\r\n${head}`, randomBytes(3 * MiB)],
      { destroyAfterSend: true },
    );
    await assertNothingLeft(s);
  });

  it('a name refused before the file\'s bytes is answered while the client still sends them, and the answer is read (no reset)', async () => {
    const s = snap();
    const file = join(data.path, 'refused.bin');
    writeFileSync(file, randomBytes(12 * MiB));
    // A name with no folder in it is checked as soon as the file's part begins.
    const res = curl(['-X', 'POST', '-F', `file=@${file};filename=.hidden`, '-H', `authorization: Bearer ${token}`, `${server.api}/library`]);
    assert.equal(res.status, 400, `${res.stderr} ${res.body.toString()}`);
    assert.match(res.body.toString(), /File name not allowed; \\"hidden\\" would be/);
    // fetch (undici) gives up on a request whose connection is reset while it sends, answer or not.
    for (const size of [200, 6 * MiB]) {
      const form = new FormData();
      form.append('file', new Blob([randomBytes(size)]), 'say "hi".txt');
      const answer = await fetch(`${server.api}/library`, { method: 'POST', body: form, headers: bearer(token) });
      assert.equal(answer.status, 400, `${size} bytes`);
      // (A body that came whole with its headers is Node's already: read as a stream, on a connection kept.)
      if (size > MiB) assert.equal(answer.headers.get('connection'), 'close');
      assert.match(((await answer.json()) as { detail: string }).detail, /File name not allowed/);
    }
    await assertNothingLeft(s);
  });

  it('a field over 16 KiB is refused with 413 both ways (not cut short), keeping nothing', async () => {
    const s = snap();
    const file = join(data.path, 'small.bin');
    writeFileSync(file, randomBytes(1000));
    const long = join(data.path, 'long.txt');
    writeFileSync(long, 'd'.repeat(16 * 1024 + 1));
    for (const chunked of [false, true]) {
      const res = curl(['-X', 'POST', '-F', `description=<${long}`, '-F', `file=@${file};filename=a.bin`, ...(chunked ? ['-H', 'transfer-encoding: chunked'] : []), '-H', `authorization: Bearer ${token}`, `${server.api}/library`]);
      assert.equal(res.status, 413, `${chunked ? 'chunked' : 'with a length'}: ${res.body.toString()}`);
      assert.match(res.body.toString(), /description.*larger than 16384 bytes/);
    }
    await assertNothingLeft(s);
  });

  it('a file over the limit in a body announced within it is cut off with 413, keeping nothing', async () => {
    const s = snap();
    const head = `--big\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n`;
    // Announced as the limit plus room for the form: the file inside is one MiB over the limit.
    const answer = await rawRequest(
      server.port,
      [`POST /api/v1/library HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=big\r\nContent-Length: ${MAX + 200 * 1024}\r\nConnection: close\r\n\r\n${head}`, randomBytes(MAX + MiB - head.length)],
      { timeoutMs: 15_000 },
    );
    assert.match(answer, /^HTTP\/1\.1 413/);
    assert.match(answer, /larger than the limit/);
    await assertNothingLeft(s);
  });
});
