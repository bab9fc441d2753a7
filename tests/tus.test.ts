/**
 * Resumable uploads (tus 1.0 at /api/v1/uploads) against the standalone server as a child process,
 * with the real tus-js-client in Node: a 64 MiB upload survives three cut connections (a TCP proxy
 * between client and server) and a restart of the server, over the fs driver and over S3 (s3rver),
 * and ends as an item whose SHA-256 and bytes are the file's, with no staged byte and no upload key
 * left; plus the protocol's refusals (412, 409, 415, 423, 404 to others, metadata as strict as
 * POST /library, caps, 413), termination and the sweeping of expired uploads.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tus from 'tus-js-client';
import { freePort, startRedis, startS3, tempDir, type TestRedis, type TestS3 } from './helpers/infra.js';
import { bearer, login } from './helpers/http.js';
import { startServer, type LogLine, type TestServer } from './helpers/server.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

const MiB = 1024 * 1024;
const TUS = { 'tus-resumable': '1.0.0' };
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const meta = (fields: Record<string, string>) =>
  Object.entries(fields)
    .map(([k, v]) => `${k} ${b64(v)}`)
    .join(',');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A Redis, a data folder and a standalone server over them that the test may restart on the same port. */
interface Site {
  redis: TestRedis;
  data: { path: string; cleanup(): void };
  server: TestServer;
  port: number;
  env: Record<string, string>;
  /** The log lines of the processes stopped by `restart`. */
  earlierLogs: LogLine[];
  restart(how: 'kill' | 'stop'): Promise<void>;
  close(): Promise<void>;
}

async function startSite(env: Record<string, string> = {}, s3?: TestS3): Promise<Site> {
  const redis = await startRedis();
  const data = tempDir();
  const port = await freePort();
  const fullEnv: Record<string, string> = {
    REDIS_URL: redis.url,
    NONDIVY_DATA_DIR: data.path,
    NONDIVY_ADMIN_PASSWORD: 'admin-password',
    NONDIVY_MAX_UPLOAD_BYTES: '100MiB',
    ...(s3 ? { NONDIVY_BLOB_DRIVER: 's3', S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: s3.bucket } : {}),
    ...env,
  };
  let server: TestServer;
  try {
    server = await startServer(fullEnv, { port });
  } catch (err) {
    await redis.close();
    data.cleanup();
    throw err;
  }
  const site: Site = {
    redis,
    data,
    server,
    port,
    env: fullEnv,
    earlierLogs: [],
    async restart(how) {
      if (how === 'kill') await site.server.kill();
      else await site.server.stop();
      site.earlierLogs.push(...site.server.logs);
      site.server = await startServer(fullEnv, { port });
    },
    async close() {
      await site.server.stop();
      await redis.close();
      data.cleanup();
    },
  };
  return site;
}

/** Every upload key left in the site's Redis, with its TTL (ms). */
function uploadKeys(redis: TestRedis): { key: string; ttl: number }[] {
  const found = redis.cli('--scan', '--pattern', 'nd:resumable:*').split('\n').filter(Boolean);
  return found.map((key) => ({ key, ttl: Number(redis.cli('pttl', key)) }));
}

/** What the item a finished upload became says about itself. */
async function itemOf(api: string, token: string, uploadUrl: string): Promise<{ id: string; sha256: string; size: number; path: string; title: string }> {
  const head = await fetch(uploadUrl, { method: 'HEAD', headers: { ...TUS, ...bearer(token) } });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('upload-offset'), head.headers.get('upload-length'), 'a finished upload reports its whole length');
  const id = head.headers.get('nondivy-item-id');
  assert.ok(id, 'HEAD of a finished upload names its item');
  const item = (await (await fetch(`${api}/library/${id}`)).json()) as { id: string; sha256: string; size: number; path: string; title: string };
  assert.equal(decodeURI(head.headers.get('nondivy-item-path') ?? ''), item.path);
  return item;
}

/**
 * Uploads `file` with tus-js-client through `proxy`, which cuts the connection at 10, 22 and 46 MiB
 * sent, and restarts the server (`how`) at 34 MiB; resolves with the upload's URL.
 */
async function resilientUpload(site: Site, proxy: TcpProxy, token: string, file: Buffer, how: 'kill' | 'stop'): Promise<{ url: string; patchOffsets: number[] }> {
  proxy.at(10 * MiB, () => proxy.cut());
  proxy.at(22 * MiB, () => proxy.cut());
  proxy.at(34 * MiB, () => site.restart(how));
  proxy.at(46 * MiB, () => proxy.cut());
  const errors: string[] = [];
  const patchOffsets: number[] = [];
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      endpoint: `${proxy.url}/api/v1/uploads`,
      headers: bearer(token),
      metadata: { filename: 'big.bin', title: 'A big file', tags: 'test,tus' },
      uploadSize: file.length,
      // Long enough for a restart (and, after a kill, for the dead process's write lock to expire).
      retryDelays: [0, 300, 500, 1000, 1000, 2000, 2000, 3000, 3000, 3000, 3000, 3000],
      storeFingerprintForResuming: false,
      onShouldRetry: (err) => {
        errors.push(err.message.split('\n')[0]!);
        const status = err.originalResponse?.getStatus() ?? 0;
        return status === 0 || status >= 500 || status === 409 || status === 423;
      },
      onBeforeRequest: (req) => {
        if (req.getMethod() === 'PATCH') patchOffsets.push(Number(req.getHeader('Upload-Offset')));
      },
      onError: (err) => reject(new Error(`${err.message}\nafter: ${errors.join('\n')}`)),
      onSuccess: () => resolve({ url: upload.url!.replace(proxy.url, site.server.url), patchOffsets }),
    });
    upload.start();
  });
}

/**
 * Resumed, never restarted: PATCH offsets never go back (a retry of a request answered 423 or 409
 * asks again at the same offset), and the upload continued from at least two later offsets.
 */
function assertResumed(offsets: number[]) {
  assert.equal(offsets[0], 0);
  for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i]! >= offsets[i - 1]!, `PATCH offsets: ${offsets.join()}`);
  assert.ok(new Set(offsets.filter((o) => o > 0)).size >= 2, `PATCH offsets: ${offsets.join()}`);
}

describe('tus uploads survive cut connections and restarts', { timeout: 120_000 }, () => {
  const file = randomBytes(64 * MiB);
  const fileHash = sha256(file);

  it('fs: a 64 MiB upload through three cuts and a killed server ends as the file, nothing staged left', async () => {
    const site = await startSite();
    const proxy = await startTcpProxy(site.port);
    try {
      const token = await login(site.server.api, 'admin', 'admin-password');
      const { url, patchOffsets } = await resilientUpload(site, proxy, token, file, 'kill');
      assert.equal(proxy.cuts, 3);
      const item = await itemOf(site.server.api, token, url);
      assert.equal(item.sha256, fileHash);
      assert.equal(item.size, file.length);
      assert.equal(item.title, 'A big file');
      const bytes = Buffer.from(await (await fetch(`${site.server.api}/library/${item.id}/content`)).arrayBuffer());
      assert.equal(sha256(bytes), fileHash, 'the stored bytes are the file');
      // Resumed, never restarted: after the first, every PATCH continued further on.
      assertResumed(patchOffsets);
      assert.ok(site.server.logs.some((l) => l.msg === 'resumable upload finished'), 'the restarted server finished it');
      assert.deepEqual(readdirSync(join(site.data.path, 'blobs', 'staging')), [], 'no staging file left');
      assert.deepEqual(readdirSync(join(site.data.path, 'blobs', 'tmp')), []);
      const left = uploadKeys(site.redis);
      assert.equal(left.length, 1, JSON.stringify(left));
      assert.match(left[0]!.key, /^nd:resumable:[A-Za-z0-9_-]{22}$/, 'only the finished record lingers');
      assert.ok(left[0]!.ttl > 0, 'and it expires');
      assert.equal(site.redis.cli('zcard', 'nd:uploads'), '0', 'no library upload lease left');
    } finally {
      await proxy.close().catch(() => undefined);
      await site.close();
    }
  });

  it('s3: the same over s3rver with a graceful restart; no part, tail or staged object left', async () => {
    const s3 = await startS3();
    const site = await startSite({}, s3).catch(async (err) => {
      await s3.close();
      throw err;
    });
    const proxy = await startTcpProxy(site.port);
    try {
      const token = await login(site.server.api, 'admin', 'admin-password');
      const { url, patchOffsets } = await resilientUpload(site, proxy, token, file, 'stop');
      assert.equal(proxy.cuts, 3);
      const item = await itemOf(site.server.api, token, url);
      assert.equal(item.sha256, fileHash);
      const bytes = Buffer.from(await (await fetch(`${site.server.api}/library/${item.id}/content`)).arrayBuffer());
      assert.equal(sha256(bytes), fileHash, 'the stored bytes are the file');
      assertResumed(patchOffsets);
      // s3rver keeps objects as files (with metadata files beside them): one blob, nothing else.
      const files: string[] = [];
      const walk = (dir: string) => {
        for (const e of readdirSync(dir, { withFileTypes: true })) {
          if (e.isDirectory()) walk(join(dir, e.name));
          else files.push(join(dir, e.name).slice(s3.directory.length));
        }
      };
      walk(s3.directory);
      const objects = files.filter((f) => /_S3rver_object$/.test(f));
      assert.equal(objects.length, 1, files.join('\n'));
      assert.equal(statSync(join(s3.directory, objects[0]!)).size, file.length);
      assert.ok(!files.some((f) => /tail|part/i.test(f.replace(/_S3rver_\w+$/, ''))), files.join('\n'));
      const left = uploadKeys(site.redis);
      assert.equal(left.length, 1, JSON.stringify(left));
      assert.ok(left[0]!.ttl > 0);
    } finally {
      await proxy.close().catch(() => undefined);
      await site.close();
      await s3.close();
    }
  });
});

/** One HTTP request with a body written in pieces (chunked), for bodies fetch cannot shape. */
function chunkedRequest(url: string, method: string, headers: Record<string, string>, pieces: Buffer[], pauseMs = 0): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    (async () => {
      for (const piece of pieces) {
        if (req.destroyed) return;
        req.write(piece);
        if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      }
      req.end();
    })().catch(reject);
  });
}

describe('tus protocol rules', { timeout: 60_000 }, () => {
  let site: Site;
  let api: string;
  let admin: string;
  let member: string;

  before(async () => {
    site = await startSite({ NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES: '1GiB' });
    api = site.server.api;
    admin = await login(api, 'admin', 'admin-password');
    const res = await fetch(`${api}/users`, { method: 'POST', headers: { ...bearer(admin), 'content-type': 'application/json' }, body: JSON.stringify({ username: 'mallory', password: 'mallory-password' }) });
    assert.equal(res.status, 201);
    member = await login(api, 'mallory', 'mallory-password');
  });
  after(() => site?.close());

  const create = (token: string | null, length: number, fields: Record<string, string> | string = { filename: 'a.bin' }, extra: Record<string, string> = {}) =>
    fetch(`${api}/uploads`, {
      method: 'POST',
      headers: { ...TUS, ...(token ? bearer(token) : {}), 'upload-length': String(length), 'upload-metadata': typeof fields === 'string' ? fields : meta(fields), ...extra },
    });
  const createOk = async (token: string, length: number, fields?: Record<string, string>) => {
    const res = await create(token, length, fields);
    assert.equal(res.status, 201, await res.text());
    return new URL(res.headers.get('location')!, site.server.url).href;
  };
  const patch = (url: string, token: string, offset: number, body: Buffer, type = 'application/offset+octet-stream') =>
    fetch(url, { method: 'PATCH', headers: { ...TUS, ...bearer(token), 'upload-offset': String(offset), 'content-type': type }, body });
  const head = (url: string, token: string) => fetch(url, { method: 'HEAD', headers: { ...TUS, ...bearer(token) } });
  const stagingFiles = () => readdirSync(join(site.data.path, 'blobs', 'staging'));

  it('OPTIONS tells the version, extensions and largest upload; every answer says Tus-Resumable', async () => {
    const res = await fetch(`${api}/uploads`, { method: 'OPTIONS' });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('tus-resumable'), '1.0.0');
    assert.equal(res.headers.get('tus-version'), '1.0.0');
    assert.equal(res.headers.get('tus-extension'), 'creation,creation-with-upload,termination,expiration');
    assert.equal(res.headers.get('tus-max-size'), String(100 * MiB));
  });

  it('412 without Tus-Resumable (or another version), naming the version spoken', async () => {
    const url = await createOk(admin, 10);
    for (const headers of [bearer(admin), { ...bearer(admin), 'tus-resumable': '0.2.2' }]) {
      const res = await fetch(url, { method: 'HEAD', headers });
      assert.equal(res.status, 412);
      assert.equal(res.headers.get('tus-version'), '1.0.0');
    }
    const post = await fetch(`${api}/uploads`, { method: 'POST', headers: { ...bearer(admin), 'upload-length': '5', 'upload-metadata': meta({ filename: 'x' }) } });
    assert.equal(post.status, 412);
    assert.match(post.headers.get('content-type') ?? '', /problem\+json/);
  });

  it('guests are refused (401) unless guest uploads are on; another member gets 404 for HEAD, PATCH and DELETE', async () => {
    assert.equal((await create(null, 10)).status, 401);
    const url = await createOk(admin, 10);
    assert.equal((await head(url, member)).status, 404);
    assert.equal((await patch(url, member, 0, Buffer.alloc(10))).status, 404);
    assert.equal((await fetch(url, { method: 'DELETE', headers: { ...TUS, ...bearer(member) } })).status, 404);
    assert.equal((await head(url, admin)).headers.get('upload-offset'), '0', 'untouched');
  });

  it('metadata is as strict as POST /library: filename required and accepted as is, known keys, base64, valid fields', async () => {
    const refusals: [string, RegExp][] = [
      ['', /filename/],
      [meta({ title: 'no name' }), /filename/],
      [meta({ filename: 'a.bin', colour: 'red' }), /colour|Invalid Upload-Metadata/],
      [`filename ${b64('a.bin')},title not*base64`, /title.*base64/],
      [`filename ${b64('a.bin')},filename ${b64('b.bin')}`, /twice/],
      [`filename ${Buffer.from([0xff, 0xfe]).toString('base64')}`, /UTF-8/],
      [meta({ filename: 'a.bin', kind: 'spaceship' }), /Invalid Upload-Metadata/],
      [meta({ filename: 'a.bin', tags: 'ok,<script>' }), /Invalid Upload-Metadata/],
      [meta({ filename: 'a.bin', filetype: 'not a type' }), /Invalid Upload-Metadata/],
    ];
    for (const [header, detail] of refusals) {
      const res = await create(admin, 10, header);
      assert.equal(res.status, 400, header);
      const problem = (await res.json()) as { detail: string; errors?: { path: string }[] };
      assert.match(problem.detail + JSON.stringify(problem.errors ?? []), detail, header);
    }
    const badName = await create(admin, 10, { filename: 'dir/a:b.txt' });
    assert.equal(badName.status, 400);
    assert.equal(((await badName.json()) as { acceptedName?: string }).acceptedName, 'a_b.txt');
    const badFolder = await create(admin, 10, { filename: 'a.txt', folder: 'Music/Bad?' });
    assert.equal(badFolder.status, 400);
    assert.equal(((await badFolder.json()) as { acceptedFolder?: string }).acceptedFolder, 'Music/Bad_');
    assert.deepEqual(stagingFiles().length, 0, 'a refused upload stages nothing');
  });

  it('Upload-Length: required, digits only, no deferred length, over the limit 413', async () => {
    const noLength = await fetch(`${api}/uploads`, { method: 'POST', headers: { ...TUS, ...bearer(admin), 'upload-metadata': meta({ filename: 'a' }) } });
    assert.equal(noLength.status, 400);
    const deferred = await fetch(`${api}/uploads`, { method: 'POST', headers: { ...TUS, ...bearer(admin), 'upload-defer-length': '1', 'upload-metadata': meta({ filename: 'a' }) } });
    assert.equal(deferred.status, 400);
    assert.match(((await deferred.json()) as { detail: string }).detail, /Defer/);
    for (const bad of ['-1', '1e6', '5.0', '12abc']) assert.equal((await create(admin, bad as unknown as number)).status, 400, bad);
    const huge = await create(admin, 100 * MiB + 1);
    assert.equal(huge.status, 413);
  });

  it('PATCH: 409 on a wrong offset, 415 on another type, 400 on a body longer than the rest (nothing past it kept)', async () => {
    const data = randomBytes(3000);
    const url = await createOk(admin, data.length, { filename: 'patch.bin' });
    assert.equal((await patch(url, admin, 5, data.subarray(0, 10))).status, 409);
    assert.equal((await patch(url, admin, 0, data.subarray(0, 10), 'application/octet-stream')).status, 415);
    const first = await patch(url, admin, 0, data.subarray(0, 1000));
    assert.equal(first.status, 204);
    assert.equal(first.headers.get('upload-offset'), '1000');
    assert.ok(first.headers.get('upload-expires'));
    assert.equal((await patch(url, admin, 0, data.subarray(0, 10))).status, 409, 'an offset behind is refused too');
    // Announced too long: refused before a byte is read.
    assert.equal((await patch(url, admin, 1000, randomBytes(2001))).status, 400);
    // Chunked and too long: stopped at the length, refused, and the offset stays where it was.
    const tooLong = await chunkedRequest(url, 'PATCH', { ...TUS, ...bearer(admin), 'upload-offset': '1000', 'content-type': 'application/offset+octet-stream' }, [data.subarray(1000, 2000), randomBytes(1500)]);
    assert.equal(tooLong.status, 400, tooLong.body);
    assert.equal((await head(url, admin)).headers.get('upload-offset'), '1000');
    const last = await patch(url, admin, 1000, data.subarray(1000));
    assert.equal(last.status, 204);
    assert.equal(last.headers.get('upload-offset'), String(data.length));
    const id = last.headers.get('nondivy-item-id');
    assert.ok(id);
    assert.equal(sha256(Buffer.from(await (await fetch(`${api}/library/${id}/content`)).arrayBuffer())), sha256(data));
    // The client that lost that answer asks again: done, same item.
    const again = await head(url, admin);
    assert.equal(again.headers.get('upload-offset'), String(data.length));
    assert.equal(again.headers.get('nondivy-item-id'), id);
    assert.equal(again.headers.get('cache-control'), 'no-store');
    assert.equal((await patch(url, admin, data.length, Buffer.alloc(0))).status, 204, 'an empty PATCH at the end is answered as done');
  });

  it('creation-with-upload, and an empty file made at creation', async () => {
    const data = randomBytes(5000);
    const res = await fetch(`${api}/uploads`, {
      method: 'POST',
      headers: { ...TUS, ...bearer(admin), 'upload-length': '5000', 'upload-metadata': meta({ filename: 'cwu.bin', kind: 'document', tags: 'x,y' }), 'content-type': 'application/offset+octet-stream' },
      body: data.subarray(0, 2000),
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('upload-offset'), '2000');
    const url = new URL(res.headers.get('location')!, site.server.url).href;
    const done = await patch(url, admin, 2000, data.subarray(2000));
    const item = (await (await fetch(`${api}/library/${done.headers.get('nondivy-item-id')}`)).json()) as { kind: string; tags: string[]; sha256: string };
    assert.deepEqual([item.kind, item.tags, item.sha256], ['document', ['x', 'y'], sha256(data)]);
    const empty = await create(admin, 0, { filename: 'empty.txt' });
    assert.equal(empty.status, 201);
    assert.equal(empty.headers.get('upload-offset'), '0');
    const emptyItem = (await (await fetch(`${api}/library/${empty.headers.get('nondivy-item-id')}`)).json()) as { size: number };
    assert.equal(emptyItem.size, 0);
  });

  it('423 while another request writes; a holder whose client went quiet yields within seconds', async () => {
    const url = await createOk(admin, 4096, { filename: 'lock.bin' });
    // A PATCH that sends 1 KiB, then nothing: its client is stuck.
    const stuck = request(url, { method: 'PATCH', headers: { ...TUS, ...bearer(admin), 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': '4096' } });
    const stuckDone = new Promise<void>((resolve) => {
      stuck.on('error', () => resolve());
      stuck.on('response', (res) => res.resume().on('end', () => resolve()).on('error', () => resolve()));
      stuck.on('close', () => resolve());
    });
    stuck.write(randomBytes(1024));
    await new Promise((r) => setTimeout(r, 300));
    const busy = await patch(url, admin, 0, randomBytes(10));
    assert.equal(busy.status, 423);
    assert.match(busy.headers.get('content-type') ?? '', /problem\+json/);
    // The stuck request yields (its client sent nothing for 2 s): what it received is kept. A
    // client meanwhile asks where the upload stands and tries again, as tus clients do.
    const deadline = Date.now() + 10_000;
    const seen: number[] = [];
    let offset: string | null = null;
    while (Date.now() < deadline && offset === null) {
      await new Promise((r) => setTimeout(r, 300));
      const at = (await head(url, admin)).headers.get('upload-offset')!;
      const res = await patch(url, admin, Number(at), Buffer.alloc(0));
      seen.push(res.status);
      if (res.status === 204) offset = res.headers.get('upload-offset');
      else assert.ok([409, 423].includes(res.status), String(res.status));
    }
    assert.ok(seen.includes(423), seen.join());
    assert.equal(offset, '1024', `the new request got the lock at the stuck one's durable offset (${seen.join()})`);
    await stuckDone;
    stuck.destroy();
  });

  it('DELETE ends an upload and removes its staged bytes and keys', async () => {
    const before = new Set(stagingFiles());
    const url = await createOk(admin, 10 * MiB, { filename: 'gone.bin' });
    const id = url.split('/').pop()!;
    assert.equal((await patch(url, admin, 0, randomBytes(MiB))).status, 204);
    const files = stagingFiles().filter((f) => !before.has(f));
    assert.equal(files.length, 1);
    assert.equal(statSync(join(site.data.path, 'blobs', 'staging', files[0]!)).size, MiB);
    const del = await fetch(url, { method: 'DELETE', headers: { ...TUS, ...bearer(admin) } });
    assert.equal(del.status, 204);
    assert.deepEqual(stagingFiles().filter((f) => !before.has(f)), []);
    assert.equal((await head(url, admin)).status, 404);
    assert.deepEqual(uploadKeys(site.redis).filter((k) => k.key.includes(id)), []);
  });

  it('a cancel — the PATCH aborted and DELETE sent at once — ends the upload (204, not 423), nothing staged', async () => {
    const before = new Set(stagingFiles());
    const url = await createOk(admin, 64 * MiB, { filename: 'cancelled.bin' });
    const id = url.split('/').pop()!;
    const writing = request(url, { method: 'PATCH', headers: { ...TUS, ...bearer(admin), 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(64 * MiB) } });
    writing.on('error', () => undefined);
    writing.write(randomBytes(2 * MiB));
    const writes = () => stagingFiles().some((f) => !before.has(f) && statSync(join(site.data.path, 'blobs', 'staging', f)).size > 0);
    for (const end = Date.now() + 10_000; !writes() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    assert.ok(writes(), 'the PATCH is writing');
    writing.destroy();
    const del = await fetch(url, { method: 'DELETE', headers: { ...TUS, ...bearer(admin) } });
    assert.equal(del.status, 204, await del.text());
    assert.equal((await head(url, admin)).status, 404);
    assert.deepEqual(stagingFiles().filter((f) => !before.has(f)), []);
    assert.deepEqual(uploadKeys(site.redis).filter((k) => k.key.includes(id)), []);
  });

  it('caps: the 101st unfinished upload of a member is refused with a clear 429; finishing room lets the next in', async () => {
    const urls: string[] = [];
    for (let i = 0; i < 100; i += 10) {
      urls.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => createOk(member, 10, { filename: `n${i + j}.bin` })))));
    }
    const refused = await create(member, 10, { filename: 'n100.bin' });
    assert.equal(refused.status, 429);
    const problem = (await refused.json()) as { detail: string };
    assert.match(problem.detail, /100 unfinished uploads/);
    assert.equal((await create(admin, 10)).status, 201, 'another user is not affected');
    assert.equal((await fetch(urls[0]!, { method: 'DELETE', headers: { ...TUS, ...bearer(member) } })).status, 204);
    assert.equal((await create(member, 10, { filename: 'n100.bin' })).status, 201);
    // The byte cap (1 GiB here) counts announced lengths.
    const bytes = await create(admin, 100 * MiB);
    assert.equal(bytes.status, 201);
    for (const u of urls.slice(1)) await fetch(u, { method: 'DELETE', headers: { ...TUS, ...bearer(member) } });
  });
});

describe('guests and docs', { timeout: 60_000 }, () => {
  it('with NONDIVY_GUEST_UPLOAD=1 a guest uploads (the item is the guest\'s) and a member cannot see the guest\'s upload; /docs lists the routes', async () => {
    const site = await startSite({ NONDIVY_GUEST_UPLOAD: '1' });
    try {
      const api = site.server.api;
      const data = randomBytes(70_000);
      const created = await fetch(`${api}/uploads`, { method: 'POST', headers: { ...TUS, 'upload-length': String(data.length), 'upload-metadata': meta({ filename: 'guest.bin' }) } });
      assert.equal(created.status, 201);
      const url = new URL(created.headers.get('location')!, site.server.url).href;
      const admin = await login(api, 'admin', 'admin-password');
      assert.equal((await fetch(url, { method: 'HEAD', headers: { ...TUS, ...bearer(admin) } })).status, 404);
      const done = await fetch(url, { method: 'PATCH', headers: { ...TUS, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }, body: data });
      assert.equal(done.status, 204);
      const item = (await (await fetch(`${api}/library/${done.headers.get('nondivy-item-id')}`)).json()) as { uploadedBy: string; sha256: string };
      assert.deepEqual([item.uploadedBy, item.sha256], ['guest', sha256(data)]);
      const docs = (await (await fetch(`${site.server.url}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
      assert.ok(docs.paths['/api/v1/uploads']?.post, Object.keys(docs.paths).join());
      assert.ok(docs.paths['/api/v1/uploads/{id}']?.patch);
    } finally {
      await site.close();
    }
  });
});

describe('expiry', { timeout: 60_000 }, () => {
  it('an abandoned upload is swept with its staged bytes once it expires', async () => {
    const site = await startSite({ NONDIVY_UPLOAD_EXPIRY_SECONDS: '2' });
    try {
      const api = site.server.api;
      const token = await login(api, 'admin', 'admin-password');
      const res = await fetch(`${api}/uploads`, {
        method: 'POST',
        headers: { ...TUS, ...bearer(token), 'upload-length': '100000', 'upload-metadata': meta({ filename: 'abandoned.bin' }), 'content-type': 'application/offset+octet-stream' },
        body: randomBytes(50_000),
      });
      assert.equal(res.status, 201);
      const expires = Date.parse(res.headers.get('upload-expires')!);
      assert.ok(expires > Date.now() && expires < Date.now() + 4000, res.headers.get('upload-expires')!);
      const url = new URL(res.headers.get('location')!, site.server.url).href;
      assert.equal(readdirSync(join(site.data.path, 'blobs', 'staging')).length, 1);
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && (readdirSync(join(site.data.path, 'blobs', 'staging')).length > 0 || uploadKeys(site.redis).length > 0)) {
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.deepEqual(readdirSync(join(site.data.path, 'blobs', 'staging')), []);
      assert.deepEqual(uploadKeys(site.redis), []);
      assert.equal((await fetch(url, { method: 'HEAD', headers: { ...TUS, ...bearer(token) } })).status, 404);
      assert.ok(site.server.logs.some((l) => l.msg === 'swept expired resumable uploads'));
    } finally {
      await site.close();
    }
  });
});

describe('slow clients', { timeout: 60_000 }, () => {
  it('a PATCH is held to the upload progress rate, not to the deadline of small bodies; a trickle is cut and keeps what came', async () => {
    const site = await startSite({ NONDIVY_HTTP_BODY_TIMEOUT_SECONDS: '1', NONDIVY_HTTP_PROGRESS_TIMEOUT_SECONDS: '2', NONDIVY_HTTP_PROGRESS_MIN_BYTES: '64KiB' });
    try {
      const api = site.server.api;
      const token = await login(api, 'admin', 'admin-password');
      const created = await fetch(`${api}/uploads`, { method: 'POST', headers: { ...TUS, ...bearer(token), 'upload-length': String(2 * MiB), 'upload-metadata': meta({ filename: 'slow.bin' }) } });
      const url = new URL(created.headers.get('location')!, site.server.url).href;
      const headers = (offset: number, length: number) => ({ ...TUS, ...bearer(token), 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream', 'content-length': String(length) });
      // 800 KiB over about 3 s: past the 1 s deadline, within the rate.
      const steady = Array.from({ length: 8 }, () => randomBytes(100 * 1024));
      const ok = await chunkedRequest(url, 'PATCH', headers(0, 800 * 1024), steady, 400);
      assert.equal(ok.status, 204, ok.body);
      assert.equal(ok.headers['upload-offset'], String(800 * 1024));
      // 1 KiB every half second: cut (408) within the progress window and a tick or two.
      const started = Date.now();
      const trickle = await chunkedRequest(url, 'PATCH', headers(800 * 1024, 100 * 1024), Array.from({ length: 20 }, () => randomBytes(1024)), 500).catch((err: Error) => ({ status: 0, body: err.message, headers: {} }));
      assert.ok([0, 408].includes(trickle.status), `${trickle.status} ${trickle.body}`);
      assert.ok(Date.now() - started < 8000);
      // What arrived before the cut is kept (a checkpoint at the cut), and the lock is free again.
      let offset = 0;
      for (let i = 0; i < 20 && offset <= 800 * 1024; i++) {
        await new Promise((r) => setTimeout(r, 200));
        offset = Number((await fetch(url, { method: 'HEAD', headers: { ...TUS, ...bearer(token) } })).headers.get('upload-offset'));
      }
      assert.ok(offset > 800 * 1024 && offset < 900 * 1024, String(offset));
      const rest = await fetch(url, { method: 'PATCH', headers: headers(offset, 0), body: Buffer.alloc(0) });
      assert.equal(rest.status, 204);

      // A stopping server (SIGTERM) does not wait for a body still coming: it checkpoints it and ends.
      const pending = chunkedRequest(url, 'PATCH', headers(offset, 200 * 1024), Array.from({ length: 40 }, () => randomBytes(5 * 1024)), 100).catch(() => null);
      await new Promise((r) => setTimeout(r, 1000));
      const stopping = Date.now();
      await site.restart('stop');
      assert.ok(Date.now() - stopping < 8000, 'the stop did not wait for the body');
      await pending;
      const after = Number((await fetch(url, { method: 'HEAD', headers: { ...TUS, ...bearer(await login(api, 'admin', 'admin-password')) } })).headers.get('upload-offset'));
      assert.ok(after > offset && after < offset + 200 * 1024, `${offset} → ${after}: what came before the stop was kept`);
    } finally {
      await site.close();
    }
  });
});
