/**
 * The storage contract: one suite, run against both blob drivers (fs, and s3 against a real S3
 * server), then the library operations over a real Redis with each driver.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AppError } from '@nondivy/errors';
import { createLogger } from '@nondivy/log';
import { createRedis, RedisLibraryState, waitForRedis, type Redis } from '@nondivy/state';
import { FsBlobStore, Library, S3BlobStore, type BlobStore } from '@nondivy/storage';
import { startRedis, startS3, tempDir, type TestRedis, type TestS3 } from './helpers/infra.js';

const log = createLogger('test', 'silent');
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const drain = async (s: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
};
/** Yields `data` in chunks of `size`, like a network stream would. */
function chunked(data: Buffer, size = 64 * 1024): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
  })());
}
/** A source that sends `bytes` then fails, like a client that disconnects halfway. */
function failingSource(bytes: number): Readable {
  return Readable.from((async function* () {
    yield randomBytes(bytes);
    await new Promise((r) => setTimeout(r, 10));
    throw new Error('client went away');
  })());
}

interface DriverHarness {
  name: 'fs' | 's3';
  store: BlobStore;
  /** Every object and temp file the store holds, whatever its state. */
  leftovers(): Promise<string[]>;
}

let s3: TestS3;
let redis: TestRedis;
const dirs: { cleanup(): void }[] = [];
const harnesses: DriverHarness[] = [];

before(async () => {
  [s3, redis] = await Promise.all([startS3(), startRedis()]);
  const dir = tempDir();
  dirs.push(dir);
  const fsStore = new FsBlobStore(dir.path);
  await fsStore.init();
  harnesses.push({
    name: 'fs',
    store: fsStore,
    leftovers: async () => {
      const out: string[] = [];
      const walk = (p: string, rel: string) => {
        for (const e of readdirSync(p, { withFileTypes: true })) {
          if (e.isDirectory()) walk(`${p}/${e.name}`, `${rel}${e.name}/`);
          else out.push(rel + e.name);
        }
      };
      walk(dir.path, '');
      return out;
    },
  });
  const s3Store = await S3BlobStore.create({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: s3.bucket, region: 'us-east-1', partSize: 5 * MiB });
  await s3Store.init();
  harnesses.push({
    name: 's3',
    store: s3Store,
    leftovers: async () => {
      const names: string[] = [];
      for await (const o of s3Store.client.listObjectsV2(s3.bucket, '', true)) names.push((o as { name: string }).name);
      return names;
    },
  });
});

after(async () => {
  for (const h of harnesses) await h.store.close();
  await Promise.all([s3?.close(), redis?.close()]);
  for (const d of dirs) d.cleanup();
});

for (const driver of ['fs', 's3'] as const) {
  describe(`blob store contract (${driver})`, () => {
    const h = () => harnesses.find((x) => x.name === driver)!;

    it('stores bytes that read back whole and by range, and removes them', async () => {
      const { store } = h();
      const data = randomBytes(3 * MiB + 12345);
      const w = store.begin();
      for (let i = 0; i < data.length; i += 100_003) await w.write(data.subarray(i, i + 100_003));
      assert.equal(await store.stat(w.key), null, 'nothing is visible before finish');
      await w.finish();
      assert.deepEqual(await store.stat(w.key), { size: data.length });
      assert.ok((await drain(await store.read(w.key))).equals(data));
      assert.ok((await drain(await store.read(w.key, { start: 1000, end: 2999 }))).equals(data.subarray(1000, 3000)));
      assert.ok((await drain(await store.read(w.key, { start: data.length - 1, end: data.length - 1 }))).equals(data.subarray(-1)));
      await store.remove(w.key);
      assert.equal(await store.stat(w.key), null);
      await store.remove(w.key); // idempotent
      await assert.rejects(store.read(w.key), (e: unknown) => e instanceof AppError && e.kind === 'not_found');
    });

    it('stores a zero-byte blob', async () => {
      const { store } = h();
      const w = store.begin();
      await w.finish();
      assert.deepEqual(await store.stat(w.key), { size: 0 });
      assert.equal((await drain(await store.read(w.key))).length, 0);
      await store.remove(w.key);
    });

    it('round-trips a blob larger than several parts, byte for byte (multipart on s3)', async () => {
      const { store } = h();
      const data = randomBytes(17 * MiB + 7); // 4 parts of 5 MiB on s3: not a multiple of any buffer size
      let token = '';
      const w = store.begin({ onToken: (t) => void (token = t) });
      for await (const c of chunked(data, 65_536 + 3)) await w.write(c as Buffer);
      await w.finish();
      if (driver === 's3') assert.match(token, /uploadId/, 'a multipart upload was used and its id reported');
      const back = await drain(await store.read(w.key));
      assert.equal(sha(back), sha(data));
      await store.remove(w.key);
    });

    it('abort leaves nothing behind, before and after finish', async () => {
      const { store, leftovers } = h();
      const before = await leftovers();
      const w1 = store.begin();
      await w1.write(randomBytes(6 * MiB));
      await w1.abort();
      const w2 = store.begin();
      await w2.write(randomBytes(1000));
      await w2.finish();
      await w2.abort();
      assert.deepEqual(await leftovers(), before);
    });

    it('discard cleans up a write abandoned mid-way, from its token alone', async () => {
      const { store, leftovers } = h();
      const before = await leftovers();
      let token = '';
      const w = store.begin({ onToken: (t) => void (token = t) });
      token = w.token;
      await w.write(randomBytes(2 * MiB));
      await w.write(randomBytes(4 * MiB)); // on s3, this starts a multipart upload
      // The process "dies" here: nothing but the token survives.
      await store.discard(token);
      await store.discard(token); // idempotent
      const left = (await leftovers()).filter((k) => !before.includes(k));
      // fs: the open temp file was unlinked; s3: the object never completed and was removed.
      assert.deepEqual(left, []);
    });

    it('refuses keys that are not its own (no path traversal through keys)', async () => {
      const { store } = h();
      for (const key of ['../../etc/passwd', 'objects/../../x', '/etc/passwd', 'tmp/x']) {
        await assert.rejects(store.read(key), (e: unknown) => e instanceof AppError && e.kind === 'not_found');
      }
    });
  });

  describe(`library over Redis (${driver})`, () => {
    let client: Redis;
    let library: Library;
    let state: RedisLibraryState;
    const h = () => harnesses.find((x) => x.name === driver)!;
    const admin = { username: 'admin', role: 'admin' as const };
    const alice = { username: 'alice', role: 'member' as const };

    before(async () => {
      client = createRedis(redis.url, log);
      await waitForRedis(client, log);
      await client.flushdb();
      state = new RedisLibraryState(client);
      library = new Library({ blobs: h().store, state, log, maxUploadBytes: 8 * MiB, uploadLeaseMs: 200 });
    });
    after(() => client.disconnect());

    it('ingests a stream: SHA-256 and size, then the item is visible and readable', async () => {
      const data = randomBytes(MiB + 17);
      const item = await library.ingest(chunked(data), { filename: 'notes.txt', tags: ['a'] }, alice);
      assert.equal(item.sha256, sha(data));
      assert.equal(item.size, data.length);
      assert.equal(item.kind, 'document');
      assert.equal(item.contentType, 'text/plain');
      assert.equal(item.uploadedBy, 'alice');
      assert.deepEqual(await library.get(item.id), item);
      const stream = (await (await library.read(item.id)).open({ start: 5, end: 9 })).stream();
      assert.ok((await drain(stream)).equals(data.subarray(5, 10)));
      const counts = await state.counts();
      assert.equal(counts.uploads, 0, 'the lease ended with the commit');
    });

    it('stores equal bytes once; deleting one item keeps the other\'s bytes; the last delete removes them', async () => {
      const before = await h().leftovers();
      const data = randomBytes(300_000);
      const a = await library.ingest(chunked(data), { filename: 'a.bin' }, alice);
      const b = await library.ingest(chunked(data), { filename: 'b.bin' }, admin);
      assert.notEqual(a.id, b.id);
      assert.equal((await h().leftovers()).length, before.length + 1, 'one blob for two items');
      assert.equal((await state.blobInfo(a.sha256))?.refs, 2);
      await library.remove(a.id, alice);
      await assert.rejects(library.get(a.id), (e: unknown) => e instanceof AppError && e.kind === 'not_found');
      assert.ok((await drain((await (await library.read(b.id)).open()).stream())).equals(data));
      await library.remove(b.id, admin);
      assert.deepEqual(await h().leftovers(), before);
      assert.equal(await state.blobInfo(a.sha256), null);
      assert.equal((await state.counts()).trash, 0);
    });

    it('a source that fails halfway leaves no item, no lease and no bytes', async () => {
      const before = await h().leftovers();
      const itemsBefore = (await state.counts()).items;
      await assert.rejects(library.ingest(failingSource(6 * MiB), { filename: 'x.bin' }, alice), /client went away/);
      assert.deepEqual(await h().leftovers(), before);
      assert.deepEqual(await state.counts(), { items: itemsBefore, uploads: 0, trash: 0 });
    });

    it('refuses bytes past the limit with too_large and keeps nothing', async () => {
      const before = await h().leftovers();
      await assert.rejects(library.ingest(chunked(randomBytes(8 * MiB + 1)), { filename: 'big.bin' }, alice), (e: unknown) => e instanceof AppError && e.kind === 'too_large');
      assert.deepEqual(await h().leftovers(), before);
      assert.equal((await state.counts()).uploads, 0);
    });

    it('a blob store that fails while finishing leaves nothing (fault injected in finish)', async () => {
      const before = await h().leftovers();
      const real = h().store;
      const faulty: BlobStore = Object.create(real);
      faulty.begin = (opts) => {
        const w = real.begin(opts);
        return {
          key: w.key,
          get token() { return w.token; },
          write: (c) => w.write(c),
          finish: async () => { throw new AppError('unavailable', 'injected: the store went away'); },
          abort: () => w.abort(),
        };
      };
      const lib = new Library({ blobs: faulty, state, log, maxUploadBytes: 8 * MiB });
      await assert.rejects(lib.ingest(chunked(randomBytes(MiB)), { filename: 'f.bin' }, alice), /injected/);
      assert.deepEqual(await h().leftovers(), before);
      assert.equal((await state.counts()).uploads, 0);
    });

    it('sweeps an upload whose process died (its lease expired)', async () => {
      const before = await h().leftovers();
      // What a dying process leaves: a lease and part of a write, never finished nor aborted.
      const w = h().store.begin({ onToken: (t) => state.setUploadToken('dead-lease', t) });
      await state.beginUpload('dead-lease', w.token, 100);
      await w.write(randomBytes(6 * MiB));
      await new Promise((r) => setTimeout(r, 150));
      const swept = await library.sweep();
      assert.equal(swept.uploads, 1);
      assert.deepEqual(await h().leftovers(), before);
      assert.equal((await state.counts()).uploads, 0);
    });

    it('only the uploader or an admin may edit or delete', async () => {
      const item = await library.ingest(chunked(Buffer.from('hello')), { filename: 'h.txt' }, alice);
      const bob = { username: 'bob', role: 'member' as const };
      await assert.rejects(library.update(item.id, { title: 'x' }, bob), (e: unknown) => e instanceof AppError && e.kind === 'forbidden');
      await assert.rejects(library.remove(item.id, null), (e: unknown) => e instanceof AppError && e.kind === 'unauthorized');
      const updated = await library.update(item.id, { title: 'Hello', filename: '../../evil\u202e.txt' }, alice);
      assert.equal(updated.title, 'Hello');
      assert.equal(updated.filename, 'evil.txt');
      await library.remove(item.id, admin);
    });

    it('two equal uploads racing stay consistent: two items, one blob, refs 2', async () => {
      const data = randomBytes(2 * MiB);
      const [a, b] = await Promise.all([
        library.ingest(chunked(data), { filename: 'r1' }, alice),
        library.ingest(chunked(data), { filename: 'r2' }, alice),
      ]);
      assert.equal((await state.blobInfo(a.sha256))?.refs, 2);
      assert.ok((await drain((await (await library.read(a.id)).open()).stream())).equals(data));
      await Promise.all([library.remove(a.id, alice), library.remove(b.id, alice)]);
      assert.equal(await state.blobInfo(a.sha256), null);
      assert.equal((await state.counts()).trash, 0);
    });
  });
}
