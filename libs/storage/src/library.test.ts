/**
 * The library's rules over a real blob store (FsBlobStore in a throwaway folder) and the in-memory
 * test double of its state (testing/memory-state.ts): what an upload leaves behind when it succeeds,
 * fails or is swept, how equal bytes share one blob, and that a read sends exactly the range asked.
 * The same library over Redis and S3 is exercised end to end by tests/storage.test.ts.
 *
 * Every `assert.ok` has a message: without one, a failing `assert.ok` makes Node re-read and parse
 * the transpiled source to quote the expression, which on this file takes minutes, not milliseconds.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { AppError } from '@nondivy/errors';
import { createLogger } from '@nondivy/log';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './blob-store-fs.js';
import { Library, type Actor } from './library.js';
import { MemoryLibraryState } from './testing/memory-state.js';

const log = createLogger('library-test', 'silent');
const alice: Actor = { username: 'alice', role: 'member' };
const bob: Actor = { username: 'bob', role: 'member' };
const root: Actor = { username: 'admin', role: 'admin' };
/**
 * A memory-backed folder where the system has one: these tests check what a write leaves in the
 * folder, not its durability, and each commit's fsync on a busy disk would dominate their time.
 */
const TMP = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let blobs: FsBlobStore;
let state: MemoryLibraryState;
let library: Library;

function makeLibrary(maxUploadBytes = 16 * 1024 * 1024, store: BlobStore = blobs) {
  return new Library({ blobs: store, state, log, maxUploadBytes, uploadLeaseMs: 30_000 });
}

/** Every file under the blob root, as `tmp/…` or `objects/…/…`. */
async function files(): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

/** Nothing of any upload remains: no item, no lease, no trash, no file. */
async function assertNothingLeft() {
  assert.deepEqual(state.counts(), { items: 0, uploads: 0, trash: 0 });
  assert.equal(state.blobs.size, 0, 'no registry entry');
  assert.deepEqual(await files(), []);
}

/** A source that yields `chunks`, then fails as a client that went away. */
async function* failingSource(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
  throw new Error('client went away');
}

/** A sink that keeps a copy of every chunk it is handed: the sender may reuse its buffers. */
function collector() {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/**
 * A fresh blob folder, state and library before each test of the calling suite. Registered per suite,
 * not at the top of the file: the unit tier runs every file in one process, where top-level hooks
 * would belong to the shared root and run around every other file's tests too.
 */
function freshLibraryEachTest() {
  before(async () => {
    dir = await mkdtemp(join(TMP, 'nondivy-library-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await rm(dir, { recursive: true, force: true });
    blobs = new FsBlobStore(dir);
    await blobs.init();
    state = new MemoryLibraryState();
    library = makeLibrary();
  });
}

describe('Library: ingest', { timeout: 20_000 }, () => {
  freshLibraryEachTest();

  it('hashes and counts the bytes, stores them under one blob and creates the item only on commit', async () => {
    const data = Buffer.concat([Buffer.from('hello '), randomBytes(5000), Buffer.from(' world')]);
    const staged = await library.stage(Readable.from([data.subarray(0, 6), data.subarray(6, 4000), data.subarray(4000)]));
    assert.equal(staged.sha256, sha(data));
    assert.equal(staged.size, data.length);
    assert.equal(state.counts().items, 0, 'no item before commit');
    assert.equal(state.counts().uploads, 1, 'the lease stands until commit');

    const item = await staged.commit({ filename: 'notes.txt', tags: ['a'] }, alice);
    assert.equal(item.sha256, sha(data));
    assert.equal(item.size, data.length);
    assert.equal(item.uploadedBy, 'alice');
    assert.equal(item.filename, 'notes.txt');
    assert.equal(item.contentType, 'text/plain');
    assert.ok(!('blobKey' in item), 'the blob key never leaves the library');
    assert.deepEqual(state.counts(), { items: 1, uploads: 0, trash: 0 });

    const entry = state.blobs.get(item.sha256)!;
    assert.deepEqual({ refs: entry.refs, size: entry.size }, { refs: 1, size: data.length });
    assert.deepEqual(await files(), [entry.key], 'one committed blob, nothing in tmp/');
    assert.deepEqual(await readFile(join(dir, entry.key)), data);
    assert.deepEqual(await library.get(item.id), item);
    assert.equal(await library.nameOf(item.id), 'notes.txt');
  });

  it('a guest upload is recorded as by "guest"; an empty file is an item too', async () => {
    const item = await library.ingest(Readable.from([]), { filename: 'empty.bin' }, null);
    assert.equal(item.uploadedBy, 'guest');
    assert.equal(item.size, 0);
    assert.equal(item.sha256, sha(Buffer.alloc(0)));
  });

  it('a source that fails midway leaves no item, no lease and no file', async () => {
    // More than the fs writer gathers before its first write, so bytes did reach the disk.
    const chunks = [randomBytes(700 * 1024), randomBytes(700 * 1024)];
    await assert.rejects(library.stage(failingSource(chunks)), /client went away/);
    await assertNothingLeft();
  });

  it('a discarded upload leaves nothing, and discarding twice is harmless', async () => {
    const staged = await library.stage(Readable.from([randomBytes(2 * 1024 * 1024)]));
    assert.equal((await files()).length, 1);
    await staged.discard();
    await staged.discard();
    await assertNothingLeft();
    await assert.rejects(staged.commit({ filename: 'x' }, alice), /already settled/);
    await assertNothingLeft();
  });

  it('refuses a file past the limit with too_large and leaves nothing; exactly the limit is accepted', async () => {
    const small = makeLibrary(1000);
    await assert.rejects(
      small.stage(Readable.from([randomBytes(600), randomBytes(401)])),
      (err) => err instanceof AppError && err.kind === 'too_large',
    );
    await assertNothingLeft();

    // A caller's lower limit wins; a higher one cannot raise the library's.
    await assert.rejects(small.stage(Readable.from([randomBytes(101)]), { maxBytes: 100 }), (err) => err instanceof AppError && err.kind === 'too_large');
    await assert.rejects(small.stage(Readable.from([randomBytes(1001)]), { maxBytes: 5000 }), (err) => err instanceof AppError && err.kind === 'too_large');
    await assertNothingLeft();

    const item = await small.ingest(Readable.from([randomBytes(1000)]), { filename: 'fits.bin' }, alice);
    assert.equal(item.size, 1000);
  });
});

describe('Library: equal bytes are stored once', { timeout: 20_000 }, () => {
  freshLibraryEachTest();

  it('a second upload of the same bytes references the first blob and its own copy is removed', async () => {
    const data = randomBytes(3000);
    const first = await library.ingest(Readable.from([data]), { filename: 'a.bin' }, alice);
    const second = await library.ingest(Readable.from([data.subarray(0, 10), data.subarray(10)]), { filename: 'b.bin' }, bob);
    assert.notEqual(first.id, second.id);
    const [s1, s2] = [await state.getItem(first.id), await state.getItem(second.id)];
    assert.equal(s1!.blobKey, s2!.blobKey, 'both items point to one blob');
    assert.equal(state.blobs.get(sha(data))!.refs, 2);
    assert.deepEqual(await files(), [s1!.blobKey], 'the duplicate file is gone');
    assert.equal(state.counts().trash, 0, 'and out of the trash');
    assert.equal((await library.findBySha256(sha(data)))!.id, second.id, 'the last committed item holds the bytes');
  });

  it('deleting drops one reference; the last reference frees the blob', async () => {
    const data = randomBytes(3000);
    const first = await library.ingest(Readable.from([data]), { filename: 'a.bin' }, alice);
    const second = await library.ingest(Readable.from([data]), { filename: 'b.bin' }, bob);
    const key = (await state.getItem(first.id))!.blobKey;

    await library.remove(first.id, alice);
    await assert.rejects(library.get(first.id), (err) => err instanceof AppError && err.kind === 'not_found');
    assert.equal(state.blobs.get(sha(data))!.refs, 1);
    assert.deepEqual(await files(), [key], 'still referenced by the second item');
    const content = await library.read(second.id);
    const { sink, bytes } = collector();
    await (await content.open()).sendTo(sink);
    assert.deepEqual(bytes(), data);

    await library.remove(second.id, bob);
    await assertNothingLeft();
    assert.equal(await library.findBySha256(sha(data)), null);
  });

  it('only the uploader or an admin may change or delete an item; guests must log in', async () => {
    const item = await library.ingest(Readable.from([Buffer.from('mine')]), { filename: 'mine.txt' }, alice);
    const isKind = (kind: string) => (err: unknown) => err instanceof AppError && err.kind === kind;
    await assert.rejects(library.update(item.id, { title: 'x' }, bob), isKind('forbidden'));
    await assert.rejects(library.remove(item.id, bob), isKind('forbidden'));
    await assert.rejects(library.remove(item.id, null), isKind('unauthorized'));
    assert.equal((await library.get(item.id)).title, item.title, 'unchanged');

    const renamed = await library.update(item.id, { title: 'Renamed', filename: 'renamed.txt' }, alice);
    assert.equal(renamed.title, 'Renamed');
    assert.equal(await library.nameOf(item.id), 'renamed.txt', 'the path name follows the file name');
    assert.equal((await library.findByName('document', 'mine.txt')) ?? (await library.findByName('other', 'mine.txt')), null);
    await library.remove(item.id, root);
    await assertNothingLeft();
    await assert.rejects(library.remove(item.id, root), isKind('not_found'));
  });
});

describe('Library: read', { timeout: 20_000 }, () => {
  freshLibraryEachTest();

  const data = randomBytes(2 * 1024 * 1024 + 12345);

  for (const [driver, wrap] of [
    ['a store of local files (sent from the file)', (s: FsBlobStore): BlobStore => s],
    // The same store without its `openFile` ability: the body streams what the store reads (as s3).
    ['a store without local files (streamed)', (s: FsBlobStore): BlobStore => ({
      driver: 'fs', init: () => s.init(), ready: () => s.ready(), begin: (o) => s.begin(o), read: (k, r) => s.read(k, r),
      stat: (k) => s.stat(k), remove: (k) => s.remove(k), discard: (t) => s.discard(t), close: () => s.close(),
    })],
  ] as const) {
    it(`read(ref) gives the item and open(range) sends exactly that range, from ${driver}`, async () => {
      const lib = makeLibrary(undefined, wrap(blobs));
      const item = await lib.ingest(Readable.from([data]), { filename: 'big.bin' }, alice);
      for (const ref of [item.id, { kind: item.kind, name: 'big.bin' }]) {
        const content = await lib.read(ref);
        assert.deepEqual(content.item, item);
        // Ranges across the 1 MiB send chunks, a single byte, the last byte, and the whole file.
        for (const range of [{ start: 1000, end: 1_500_000 }, { start: 7, end: 7 }, { start: data.length - 1, end: data.length - 1 }, undefined]) {
          const body = await content.open(range);
          const want = range ? data.subarray(range.start, range.end + 1) : data;
          assert.equal(body.length, want.length);
          const { sink, bytes } = collector();
          await body.sendTo(sink);
          assert.ok(bytes().equals(want), `bytes of ${JSON.stringify(range)}`);
        }
        // Through a PassThrough read as it flows (the shape of a response piped on).
        const pass = new PassThrough();
        const got: Buffer[] = [];
        pass.on('data', (c: Buffer) => got.push(Buffer.from(c)));
        await (await content.open({ start: 5, end: 1_200_004 })).sendTo(pass);
        assert.ok(Buffer.concat(got).equals(data.subarray(5, 1_200_005)), 'PassThrough bytes');
        // And as a stream.
        const streamed: Buffer[] = [];
        for await (const c of (await content.open({ start: 10, end: 19 })).stream()) streamed.push(c as Buffer);
        assert.deepEqual(Buffer.concat(streamed), data.subarray(10, 20));
      }
    });
  }

  it('refuses a range outside the item, opens an empty range without the blob, and says not_found for a missing item', async () => {
    const item = await library.ingest(Readable.from([Buffer.from('0123456789')]), { filename: 'digits.txt' }, alice);
    const content = await library.read(item.id);
    await assert.rejects(content.open({ start: 0, end: 10 }), RangeError);
    await assert.rejects(content.open({ start: -1, end: 3 }), RangeError);
    await assert.rejects(content.open({ start: 5, end: 3 }), RangeError);
    const empty = await content.open({ start: 10, end: 9 });
    assert.equal(empty.length, 0);
    await assert.rejects(library.read('A'.repeat(22)), (err) => err instanceof AppError && err.kind === 'not_found');
    await assert.rejects(library.read({ kind: 'other', name: 'digits.txt' }), (err) => err instanceof AppError && err.kind === 'not_found');
  });

  it('a body opened before a delete still sends its bytes (the open file outlives the blob)', async () => {
    const data = randomBytes(300_000);
    const item = await library.ingest(Readable.from([data]), { filename: 'gone.bin' }, alice);
    const body = await (await library.read(item.id)).open();
    await library.remove(item.id, alice);
    await assertNothingLeft();
    const { sink, bytes } = collector();
    await body.sendTo(sink);
    assert.ok(bytes().equals(data), 'every byte, from the file opened before the delete');
  });
});

describe('Library: sweeping', { timeout: 20_000 }, () => {
  freshLibraryEachTest();

  it('sweeping an expired lease removes the staged bytes of an upload still streaming', async () => {
    const source = new PassThrough();
    const staging = library.stage(source);
    staging.catch(() => undefined);
    // Past the fs writer's first flush, so the bytes are on disk in tmp/.
    source.write(randomBytes(1536 * 1024));
    for (let i = 0; i < 100 && (await files()).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal((await files()).filter((f) => f.startsWith('tmp/')).length, 1);

    assert.deepEqual(await library.sweep(Date.now()), { uploads: 0, blobs: 0 }, 'a live lease is left alone');
    assert.equal((await files()).length, 1);

    assert.deepEqual(await library.sweep(Date.now() + 60_000), { uploads: 1, blobs: 0 });
    assert.deepEqual(await files(), []);
    assert.equal(state.counts().uploads, 0);

    source.destroy(new Error('client went away'));
    await assert.rejects(staging, /client went away/);
    await assertNothingLeft();
  });

  it('a commit after its lease was swept fails as unavailable and creates no item', async () => {
    const staged = await library.stage(Readable.from([randomBytes(4096)]));
    assert.equal((await files()).length, 1, 'the finished blob, not yet referenced');
    assert.deepEqual(await library.sweep(Date.now() + 60_000), { uploads: 1, blobs: 0 });
    await assert.rejects(staged.commit({ filename: 'late.bin' }, alice), (err) => err instanceof AppError && err.kind === 'unavailable');
    await assertNothingLeft();
  });

  it('sweeping deletes a trashed blob that is due (a delete whose removal was left for later)', async () => {
    const item = await library.ingest(Readable.from([randomBytes(100)]), { filename: 'x.bin' }, alice);
    const { blobKey } = (await state.getItem(item.id))!;
    // The state step of a delete happened; the process died before removing the file.
    await state.deleteItem(item.id);
    assert.deepEqual(await files(), [blobKey]);
    assert.deepEqual(await library.sweep(Date.now() + 1), { uploads: 0, blobs: 1 });
    await assertNothingLeft();
  });
});
