/**
 * The library's rules over a real blob store (FsBlobStore in a throwaway folder) and the in-memory
 * test double of its state (testing/memory-state.ts): what an upload leaves behind when it succeeds,
 * fails or is swept, how equal bytes share one blob, that a read sends exactly the range asked, the
 * folders of a kind (path names per folder, made, removed and moved folders, who may move what) and
 * the replacement of an item's bytes.
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
    assert.equal((await library.findByName('document', '', 'mine.txt')) ?? (await library.findByName('other', '', 'mine.txt')), null);
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
    // Every other method is the store's own, called on the store.
    ['a store without local files (streamed)', (s: FsBlobStore): BlobStore => new Proxy(s, {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop);
        return prop === 'openFile' ? undefined : typeof value === 'function' ? value.bind(target) : value;
      },
    })],
  ] as const) {
    it(`read(ref) gives the item and open(range) sends exactly that range, from ${driver}`, async () => {
      const lib = makeLibrary(undefined, wrap(blobs));
      const item = await lib.ingest(Readable.from([data]), { filename: 'big.bin' }, alice);
      for (const ref of [item.id, { kind: item.kind, folder: '', name: 'big.bin' }]) {
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
    await assert.rejects(library.read({ kind: 'other', folder: '', name: 'digits.txt' }), (err) => err instanceof AppError && err.kind === 'not_found');
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

describe('Library: folders', { timeout: 20_000 }, () => {
  freshLibraryEachTest();

  const isKind = (kind: string) => (err: unknown) => err instanceof AppError && err.kind === kind;
  const pause = () => new Promise((r) => setTimeout(r, 3));
  /** Commits `text` as `filename` of kind `other` into `folder` (of the library's rule). */
  const put = (folder: string, filename: string, actor: Actor | null = alice, text: string = randomBytes(8).toString('hex')) =>
    library.ingest(Readable.from([Buffer.from(text)]), { filename, folder, kind: 'other' }, actor);
  /** Every item directly in a folder, by path name. */
  async function listed(folder: string, pageSize?: number): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for await (const page of library.listFolder('other', folder, pageSize)) for (const { name, item } of page) out[name] = item.id;
    return out;
  }
  /** The holds and item counts the state keeps per folder agree with its items and made folders. */
  function assertFolderCounts() {
    const { kept, expected } = state.folderCounts('other');
    assert.deepEqual(kept, expected);
  }

  it('commit puts the item in its folder: path, findByName, read by name, counts up to the root', async () => {
    const item = await put('Miles Davis/Kind of Blue', '01 So What.flac');
    assert.equal(item.folder, 'Miles Davis/Kind of Blue');
    assert.equal(item.path, '/library/other/Miles Davis/Kind of Blue/01 So What.flac');
    assert.deepEqual(await library.get(item.id), item);
    assert.equal((await library.findByName('other', 'Miles Davis/Kind of Blue', '01 So What.flac'))?.id, item.id);
    assert.equal(await library.findByName('other', '', '01 So What.flac'), null, 'not at the root');
    assert.equal(await library.findByName('other', 'Miles Davis', '01 So What.flac'), null, 'nor one level up');
    assert.equal((await library.read({ kind: 'other', folder: 'Miles Davis/Kind of Blue', name: '01 So What.flac' })).item.id, item.id);
    for (const f of ['', 'Miles Davis', 'Miles Davis/Kind of Blue']) {
      assert.equal(await library.folderExists('other', f), true, f);
      assert.equal(await library.folderItemCount('other', f), 1, f);
    }
    assert.equal(await library.folderExists('other', 'Miles'), false);
    assert.equal(await library.folderExists('audio', 'Miles Davis'), false, 'folders are per kind');
    assert.equal(await library.folderItemCount('other', 'Kind of Blue'), 0);
    assertFolderCounts();
  });

  it('commit checks the folder with requireAcceptedFolder: empty names dropped, a refusal names the accepted folder and leaves nothing', async () => {
    const item = await put('//A//B/', 'x.txt');
    assert.equal(item.folder, 'A/B');
    assert.equal(item.path, '/library/other/A/B/x.txt');
    await library.remove(item.id, alice);
    await assertNothingLeft();
    for (const [folder, accepted] of [['A /B', 'A/B'], ['A/b:c', 'A/b_c'], ['A/../B', 'A/B'], ['..', undefined]] as const) {
      await assert.rejects(put(folder, 'x.txt'), (err) => {
        assert.ok(err instanceof AppError && err.kind === 'bad_input', String(err));
        assert.deepEqual(err.details, accepted === undefined ? undefined : { acceptedFolder: accepted });
        assert.match(err.message, accepted === undefined ? /^Folder name not allowed$/ : new RegExp(`"${accepted.replace('.', '\\.')}" would be`));
        return true;
      });
      await assertNothingLeft();
    }
    await assert.rejects(put(Array.from({ length: 17 }, () => 'd').join('/'), 'x.txt'), isKind('bad_input'));
    await assertNothingLeft();
  });

  it('path names are unique per folder: the same name twice in a folder, once in each of two folders', async () => {
    const a1 = await put('A', 'song.mp3');
    const a2 = await put('A', 'song.mp3');
    const b = await put('B', 'song.mp3');
    const top = await put('', 'song.mp3');
    assert.equal(a1.path, '/library/other/A/song.mp3');
    assert.equal(a2.path, `/library/other/A/song (${a2.id.slice(0, 6)}).mp3`);
    assert.equal(b.path, '/library/other/B/song.mp3', 'free in its own folder');
    assert.equal(top.path, '/library/other/song.mp3');
    assert.deepEqual(await listed('A'), { 'song.mp3': a1.id, [`song (${a2.id.slice(0, 6)}).mp3`]: a2.id });
    assert.deepEqual(await listed('B'), { 'song.mp3': b.id });
    assert.deepEqual(await listed(''), { 'song.mp3': top.id });
    assert.equal(await library.nameOf(b.id), 'song.mp3');
    assert.equal(await library.folderItemCount('other', ''), 4, 'the root counts every item of the kind');
    // Deleting the first frees its name; the second keeps the one it was given.
    await library.remove(a1.id, alice);
    assert.equal(await library.findByName('other', 'A', 'song.mp3'), null);
    assert.equal((await library.get(a2.id)).path, `/library/other/A/song (${a2.id.slice(0, 6)}).mp3`);
    assert.equal((await put('A', 'song.mp3')).path, '/library/other/A/song.mp3', 'the freed name is given again');
    assertFolderCounts();
  });

  it("an item's path name is never a subfolder's name there; a folder on the way may not be a file's name", async () => {
    await library.makeFolder('other', 'A/notes', alice);
    const item = await put('A', 'notes');
    assert.equal(await library.nameOf(item.id), `notes (${item.id.slice(0, 6)})`, 'the folder keeps the plain name');
    const file = await put('', 'report');
    // A new item, a move, a made folder and a folder move through the file's name are refused.
    await assert.rejects(put('report/2024', 'x.txt'), isKind('conflict'));
    assert.equal(state.counts().uploads, 0, 'the refused commit ended its lease');
    await assert.rejects(library.update(item.id, { folder: 'report' }, alice), isKind('conflict'));
    assert.equal((await library.get(item.id)).folder, 'A', 'unchanged');
    await assert.rejects(library.makeFolder('other', 'report', alice), isKind('conflict'));
    await assert.rejects(library.makeFolder('other', 'report/x', alice), isKind('conflict'));
    await assert.rejects(library.moveFolder('other', 'A', 'report/A', alice), isKind('conflict'));
    await assert.rejects(library.moveFolder('other', 'A', 'report', alice), isKind('conflict'));
    assert.equal(await library.folderExists('other', 'report'), false);
    // Elsewhere the name is free: a folder of another kind, or once the file is renamed.
    await library.makeFolder('audio', 'report', alice);
    await library.update(file.id, { filename: 'report.txt' }, alice);
    assert.equal((await put('report/2024', 'x.txt')).folder, 'report/2024');
    assertFolderCounts();
  });

  it('makeFolder and removeFolder: members only, exists, not empty, missing, the root refused', async () => {
    await assert.rejects(library.makeFolder('other', 'A', null), isKind('unauthorized'));
    assert.equal(await library.folderExists('other', 'A'), false);
    await library.makeFolder('other', 'A/B', alice);
    assert.equal(await library.folderExists('other', 'A'), true, 'its parent exists with it');
    assert.equal(await library.folderExists('other', 'A/B'), true);
    assert.equal(await library.folderItemCount('other', 'A/B'), 0);
    await assert.rejects(library.makeFolder('other', 'A/B', bob), isKind('conflict'));
    await assert.rejects(library.makeFolder('other', 'A', bob), isKind('conflict'), 'A exists because of A/B');
    await assert.rejects(library.makeFolder('other', '', bob), isKind('conflict'));
    await assert.rejects(library.makeFolder('other', '/', bob), isKind('conflict'));
    await assert.rejects(library.makeFolder('other', 'A/B ', bob), isKind('bad_input'));

    await assert.rejects(library.removeFolder('other', 'A/B', null), isKind('unauthorized'));
    await assert.rejects(library.removeFolder('other', '', root), isKind('forbidden'));
    await assert.rejects(library.removeFolder('other', 'A', bob), isKind('conflict'), 'A holds a folder');
    await assert.rejects(library.removeFolder('other', 'Z', bob), isKind('not_found'));
    await assert.rejects(library.removeFolder('audio', 'A/B', bob), isKind('not_found'), 'folders are per kind');

    const item = await put('A/B', 'x.txt');
    await assert.rejects(library.removeFolder('other', 'A/B', bob), isKind('conflict'), 'A/B holds an item');
    await library.remove(item.id, alice);
    assert.equal(await library.folderExists('other', 'A/B'), true, 'a made folder stays when emptied');
    await library.removeFolder('other', 'A/B', bob);
    for (const f of ['A/B', 'A']) assert.equal(await library.folderExists('other', f), false, f);
    await assert.rejects(library.removeFolder('other', 'A/B', bob), isKind('not_found'));

    // A folder that exists because of items is not an empty folder, and goes with its last item.
    const only = await put('C', 'y.txt');
    await assert.rejects(library.removeFolder('other', 'C', root), isKind('conflict'));
    await library.remove(only.id, alice);
    assert.equal(await library.folderExists('other', 'C'), false);
    await assert.rejects(library.removeFolder('other', 'C', root), isKind('not_found'));
    assertFolderCounts();
    assert.deepEqual(state.folderCounts('other').kept, {});
  });

  it('moveFolder: an admin any folder, a member one holding only their items; everything below moves with its names', async () => {
    const own = await put('Jazz/Miles', 'a.mp3');
    const dup = await put('Jazz/Miles', 'a.mp3');
    const deep = await put('Jazz/Miles/Live', 'b.mp3');
    await library.makeFolder('other', 'Jazz/Miles/Empty', alice);
    const bobs = await put('Rock', 'c.mp3', bob);
    const beside = await put('Jazz', 'd.mp3', bob);
    await pause();

    assert.equal(await library.moveFolder('other', 'Jazz/Miles', 'Miles Davis', alice), 3, "alice's items only");
    const moved = await library.get(dup.id);
    assert.equal(moved.folder, 'Miles Davis');
    assert.equal(moved.path, `/library/other/Miles Davis/a (${dup.id.slice(0, 6)}).mp3`, 'the name it had');
    assert.ok(moved.updatedAt > dup.updatedAt, 'updatedAt changes');
    assert.equal((await library.get(own.id)).path, '/library/other/Miles Davis/a.mp3');
    assert.equal((await library.get(deep.id)).path, '/library/other/Miles Davis/Live/b.mp3');
    assert.equal((await library.findByName('other', 'Miles Davis/Live', 'b.mp3'))?.id, deep.id);
    assert.equal(await library.findByName('other', 'Jazz/Miles/Live', 'b.mp3'), null);
    assert.deepEqual(await listed('Jazz/Miles'), {});
    for (const [f, exists, count] of [['Jazz/Miles', false, 0], ['Jazz', true, 1], ['Miles Davis', true, 3], ['Miles Davis/Live', true, 1], ['Miles Davis/Empty', true, 0]] as const) {
      assert.equal(await library.folderExists('other', f), exists, f);
      assert.equal(await library.folderItemCount('other', f), count, f);
    }
    assert.deepEqual(await library.subfolders('other', 'Jazz', null, 10), { folders: [], more: false }, 'gone from its old parent');
    assert.deepEqual((await library.subfolders('other', '', null, 10)).folders.map((f) => f.name), ['Jazz', 'Miles Davis', 'Rock']);
    // The moved items keep their names through later changes (each name is for its new folder).
    assert.equal((await library.update(dup.id, { title: 'Renamed' }, alice)).path, moved.path);
    await library.removeFolder('other', 'Miles Davis/Empty', alice);
    assert.equal(await library.moveFolder('other', 'Miles Davis', 'Miles Davis', alice), 0, 'to itself: nothing to do');
    assertFolderCounts();

    // Another member's item below: only an admin may move it.
    await assert.rejects(library.moveFolder('other', 'Jazz', 'Music/Jazz', alice), isKind('forbidden'));
    await assert.rejects(library.moveFolder('other', 'Rock', 'Music/Rock', alice), isKind('forbidden'));
    assert.equal((await library.get(beside.id)).folder, 'Jazz', 'unchanged');
    await assert.rejects(library.moveFolder('other', 'Rock', 'Music', null), isKind('unauthorized'));
    assert.equal(await library.moveFolder('other', 'Rock', 'Music/Rock', root), 1);
    assert.equal((await library.get(bobs.id)).path, '/library/other/Music/Rock/c.mp3');
    assert.equal(await library.moveFolder('other', 'Miles Davis', 'Music/Jazz/Miles Davis', bob).catch((e: unknown) => e instanceof AppError && e.kind), 'forbidden');
    assert.equal(await library.moveFolder('other', 'Miles Davis', 'Music/Jazz/Miles Davis', root), 3);
    assert.equal((await library.get(deep.id)).path, '/library/other/Music/Jazz/Miles Davis/Live/b.mp3');
    assert.equal(await library.folderItemCount('other', 'Music'), 4);
    assertFolderCounts();
  });

  it('moveFolder refuses: into itself, onto a folder or file, a missing folder, the root', async () => {
    await put('A/B', 'x.txt');
    await put('C', 'y.txt');
    await put('', 'file.txt');
    await assert.rejects(library.moveFolder('other', 'A', 'A/B/A', root), isKind('bad_input'));
    await assert.rejects(library.moveFolder('other', 'A', 'A/Z', root), isKind('bad_input'));
    await assert.rejects(library.moveFolder('other', 'A', 'C', root), isKind('conflict'));
    await assert.rejects(library.moveFolder('other', 'A/B', 'C', root), isKind('conflict'));
    await assert.rejects(library.moveFolder('other', 'A', 'file.txt', root), isKind('conflict'));
    await assert.rejects(library.moveFolder('other', 'Z', 'Y', root), isKind('not_found'));
    await assert.rejects(library.moveFolder('audio', 'A', 'Y', root), isKind('not_found'), 'folders are per kind');
    await assert.rejects(library.moveFolder('other', '', 'Y', root), isKind('forbidden'));
    await assert.rejects(library.moveFolder('other', 'A', '', root), isKind('forbidden'));
    await assert.rejects(library.moveFolder('other', 'A', '/', root), isKind('forbidden'));
    await assert.rejects(library.moveFolder('other', 'A', 'Y:', root), isKind('bad_input'));
    assert.equal((await library.findByName('other', 'A/B', 'x.txt'))?.folder, 'A/B', 'nothing moved');
    // A sibling whose name starts like the folder is not inside it.
    assert.equal(await library.moveFolder('other', 'A', 'AB', root), 1);
    assertFolderCounts();
  });

  it('update moves an item to another folder, with a free name there; its old folder goes when empty', async () => {
    const item = await put('A', 'x.txt');
    const there = await put('B/C', 'x.txt');
    await pause();
    const moved = await library.update(item.id, { folder: '/B//C/' }, alice);
    assert.equal(moved.folder, 'B/C');
    assert.equal(moved.path, `/library/other/B/C/x (${item.id.slice(0, 6)}).txt`);
    assert.equal((await library.get(there.id)).path, '/library/other/B/C/x.txt');
    assert.equal(await library.folderExists('other', 'A'), false);
    assert.equal(await library.folderItemCount('other', 'B'), 2);
    await assert.rejects(library.update(item.id, { folder: 'B /C' }, alice), (err) => err instanceof AppError && err.kind === 'bad_input' && (err.details as { acceptedFolder?: string }).acceptedFolder === 'B/C');
    await assert.rejects(library.update(item.id, { folder: 'D' }, bob), isKind('forbidden'));
    const back = await library.update(item.id, { folder: '' }, alice);
    assert.equal(back.path, '/library/other/x.txt', 'at the root its file name is free again');
    assert.equal(await library.folderItemCount('other', 'B'), 1);
    assertFolderCounts();
  });

  it('replace: same id, folder, tags and description, new bytes; the old blob is deleted when it was the last reference', async () => {
    const old = Buffer.from('old bytes');
    const item = await library.ingest(Readable.from([old]), { filename: 'doc.txt', folder: 'Docs', kind: 'other', tags: ['keep'], description: 'kept' }, alice);
    const oldKey = (await state.getItem(item.id))!.blobKey;
    await state.updateItem(item.id, { meta: { pages: 3 } });
    assert.deepEqual((await library.get(item.id)).meta, { pages: 3 });
    const fresh = Buffer.from('new bytes, longer');
    await pause();
    const staged = await library.stage(Readable.from([fresh]));
    const replaced = await staged.replace(item.id, alice);
    assert.equal(replaced.id, item.id);
    assert.equal(replaced.path, '/library/other/Docs/doc.txt');
    assert.deepEqual([replaced.folder, replaced.tags, replaced.description, replaced.title], ['Docs', ['keep'], 'kept', item.title]);
    assert.deepEqual([replaced.size, replaced.sha256], [fresh.length, sha(fresh)]);
    assert.deepEqual(replaced.meta, {}, 'the meta of the old bytes is emptied');
    assert.ok(replaced.updatedAt > item.updatedAt, 'updatedAt changes');
    const newKey = (await state.getItem(item.id))!.blobKey;
    assert.deepEqual(await files(), [newKey], 'the old blob is gone');
    assert.notEqual(newKey, oldKey);
    assert.equal(state.blobs.has(sha(old)), false);
    assert.equal(state.blobs.get(sha(fresh))!.refs, 1);
    assert.deepEqual(state.counts(), { items: 1, uploads: 0, trash: 0 }, 'the lease ended, nothing left in the trash');
    const { sink, bytes } = collector();
    await (await (await library.read(item.id)).open()).sendTo(sink);
    assert.deepEqual(bytes(), fresh);
    assertFolderCounts();
  });

  it('replace keeps the old blob while another item uses it, and shares one already stored', async () => {
    const old = Buffer.from('shared bytes');
    const item = await library.ingest(Readable.from([old]), { filename: 'a.txt', kind: 'other' }, alice);
    const twin = await library.ingest(Readable.from([old]), { filename: 'b.txt', kind: 'other' }, bob);
    const other = await library.ingest(Readable.from([Buffer.from('other bytes')]), { filename: 'c.txt', kind: 'other' }, bob);
    const sharedKey = (await state.getItem(twin.id))!.blobKey;
    const otherKey = (await state.getItem(other.id))!.blobKey;

    const replaced = await (await library.stage(Readable.from([Buffer.from('other bytes')]))).replace(item.id, root);
    assert.equal(replaced.sha256, other.sha256);
    assert.equal((await state.getItem(item.id))!.blobKey, otherKey, 'equal bytes share the stored blob');
    assert.deepEqual(await files(), [sharedKey, otherKey].sort(), 'the twin keeps the old blob; the staged copy is gone');
    assert.equal(state.blobs.get(sha(old))!.refs, 1);
    assert.equal(state.blobs.get(other.sha256)!.refs, 2);
    assert.deepEqual(state.counts(), { items: 3, uploads: 0, trash: 0 });
  });

  it('replace leaves the old blob and a redundant copy in the trash for the sweeper when they cannot be deleted at once', async () => {
    const item = await put('', 'x.txt', alice, 'before');
    const twin = await put('', 'y.txt', bob, 'after');
    const oldKey = (await state.getItem(item.id))!.blobKey;
    const keptKey = (await state.getItem(twin.id))!.blobKey;
    let failing = true;
    const flaky: BlobStore = Object.assign(Object.create(blobs) as FsBlobStore, {
      remove: async (key: string) => {
        if (failing) throw new Error('disk busy');
        return blobs.remove(key);
      },
    });
    const lib = makeLibrary(undefined, flaky);
    await (await lib.stage(Readable.from([Buffer.from('after')]))).replace(item.id, alice);
    assert.equal((await state.getItem(item.id))!.blobKey, keptKey, 'the bytes stored already');
    const left = await files();
    assert.equal(left.length, 3, 'the old blob, the shared one and the staged copy');
    assert.deepEqual([...state.trash.keys()].sort(), left.filter((k) => k !== keptKey).sort(), 'both others are in the trash');
    assert.ok(state.trash.has(oldKey), 'the old blob among them');
    failing = false;
    assert.deepEqual(await lib.sweep(Date.now() + 1), { uploads: 0, blobs: 2 });
    assert.deepEqual(await files(), [keptKey]);
    assert.equal(state.counts().trash, 0);
  });

  it('replace is for the uploader or an admin; a refusal ends the lease and leaves the item as it was', async () => {
    const item = await put('Docs', 'mine.txt', alice, 'mine');
    const before = await state.getItem(item.id);
    const filesBefore = await files();
    await assert.rejects((await library.stage(Readable.from([Buffer.from('theirs')]))).replace(item.id, bob), isKind('forbidden'));
    await assert.rejects((await library.stage(Readable.from([Buffer.from('guest')]))).replace(item.id, null), isKind('unauthorized'));
    await assert.rejects((await library.stage(Readable.from([Buffer.from('none')]))).replace('A'.repeat(22), root), isKind('not_found'));
    assert.deepEqual(await state.getItem(item.id), before);
    assert.deepEqual(await files(), filesBefore, 'the staged bytes are gone');
    assert.deepEqual(state.counts(), { items: 1, uploads: 0, trash: 0 });
  });

  it('replace tries again on the fresh item when it changed meanwhile; the state step does nothing on a stale item', async () => {
    const item = await put('', 'x.txt', alice, 'one');
    const staged = await library.stage(Readable.from([Buffer.from('two')]));
    // The state answers null for an item changed since it was read, or gone, and keeps the lease.
    const stale = { ...(await state.getItem(item.id))!, updatedAt: new Date(0).toISOString() };
    assert.equal(await state.replaceContent({ leaseId: [...state.uploads.keys()][0]!, candidateKey: 'k', expected: stale, sha256: sha(Buffer.from('two')), size: 3, contentType: 'text/plain' }), null);
    assert.equal(await state.replaceContent({ leaseId: [...state.uploads.keys()][0]!, candidateKey: 'k', expected: { ...stale, id: 'B'.repeat(22) }, sha256: sha(Buffer.from('two')), size: 3, contentType: 'text/plain' }), null);
    assert.equal(state.counts().uploads, 1, 'the lease stays');
    assert.equal((await state.getItem(item.id))!.sha256, item.sha256);
    // A change lands between the library's read and its replace: it reads again and wins on the next round.
    const replaceContent = state.replaceContent.bind(state);
    let calls = 0;
    state.replaceContent = async (input) => {
      if (calls++ === 0) await state.updateItem(item.id, { title: 'Changed meanwhile', updatedAt: new Date(Date.now() + 1000).toISOString() });
      return replaceContent(input);
    };
    const replaced = await staged.replace(item.id, alice);
    assert.equal(calls, 2);
    assert.equal(replaced.title, 'Changed meanwhile');
    assert.equal(replaced.sha256, sha(Buffer.from('two')));
    assert.equal(state.counts().uploads, 0);
  });

  it('itemsBy and findOwn: path names from every folder, the newest item first for a name', async () => {
    const older = await put('A', 'same.txt');
    await pause();
    const dupe = await put('A', 'same.txt');
    await pause();
    const newer = await put('B', 'same.txt');
    await pause();
    await put('C', 'theirs.txt', bob);
    const listing = await library.itemsBy('alice', 10);
    assert.deepEqual(listing.map((e) => [e.name, e.item.id]), [
      ['same.txt', newer.id],
      [`same (${dupe.id.slice(0, 6)}).txt`, dupe.id],
    ], 'the older "same.txt" is left out: the newer one has that name');
    assert.equal((await library.findOwn('alice', 'same.txt', 10))?.id, newer.id);
    assert.equal((await library.findOwn('alice', `same (${dupe.id.slice(0, 6)}).txt`, 10))?.id, dupe.id);
    assert.equal(await library.findOwn('alice', 'theirs.txt', 10), null);
    assert.equal(await library.findOwn('alice', 'same.txt', 0), null);
    await library.remove(newer.id, alice);
    assert.equal((await library.findOwn('alice', 'same.txt', 10))?.id, older.id);
  });

  it('itemsBy: items created in the same millisecond come by id, the greater first (as Redis orders equal scores)', async () => {
    const createdAt = new Date().toISOString();
    const ids = ['A'.repeat(22), 'B'.repeat(22)];
    for (const [i, id] of ids.entries()) {
      await state.beginUpload(`lease${i}`, 'token', 30_000);
      await state.commitUpload({ leaseId: `lease${i}`, candidateKey: `objects/${i}`, item: {
        id, title: 'x', kind: 'other', folder: `F${i}`, tags: [], description: '', filename: 'x.txt', contentType: 'text/plain', size: 1,
        sha256: sha(Buffer.from(String(i))), createdAt, updatedAt: createdAt, modifiedAt: null, uploadedBy: 'alice', downloads: 0, meta: {},
      } });
    }
    assert.deepEqual((await library.itemsBy('alice', 10)).map((e) => [e.name, e.item.id]), [['x.txt', ids[1]]]);
    assert.equal((await library.findOwn('alice', 'x.txt', 10))?.folder, 'F1');
  });

  it('listFolder and listSubfolders page through everything; subfolders are in code point order with counts', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await put('Box', `f${i}.txt`)).id);
    await put('Box/Inner', 'deep.txt');
    const pages: number[] = [];
    const seen = new Set<string>();
    for await (const page of library.listFolder('other', 'Box', 2)) {
      pages.push(page.length);
      for (const { name, item } of page) {
        assert.equal(item.path, `/library/other/Box/${name}`);
        seen.add(item.id);
      }
    }
    assert.deepEqual(pages, [2, 2, 1]);
    assert.deepEqual(seen, ids, 'each item of the folder once, not those below it');
    assert.deepEqual(await listed('Nowhere'), {});

    // U+FF01 sorts before U+1F600 by code point, after it in UTF-16 code units.
    for (const name of ['😀', '！', 'é', 'a', 'Z']) await library.makeFolder('other', `Box/${name}`, alice);
    await put('Box/a/b', 'x.txt');
    await put('Box/a', 'y.txt');
    const names: string[][] = [];
    for await (const page of library.listSubfolders('other', 'Box', 2)) names.push(page.map((f) => f.name));
    assert.deepEqual(names, [['Inner', 'Z'], ['a', 'é'], ['！', '😀']]);
    assert.deepEqual(await library.subfolders('other', 'Box', 'Z', 2), { folders: [{ name: 'a', items: 2 }, { name: 'é', items: 0 }], more: true });
    assert.deepEqual(await library.subfolders('other', 'Box', 'é', 2), { folders: [{ name: '！', items: 0 }, { name: '😀', items: 0 }], more: false });
    assert.deepEqual(await library.subfolders('other', 'Box', '😀', 2), { folders: [], more: false });
    assert.deepEqual(await library.subfolders('other', 'Box', null, 1), { folders: [{ name: 'Inner', items: 1 }], more: true });
    assert.deepEqual(await library.subfolders('other', '', null, 10), { folders: [{ name: 'Box', items: 8 }], more: false });
    assert.deepEqual(await library.subfolders('other', 'Box/a', null, 10), { folders: [{ name: 'b', items: 1 }], more: false });
    const all: string[] = [];
    for await (const page of library.listSubfolders('other', 'Nowhere')) all.push(...page.map((f) => f.name));
    assert.deepEqual(all, []);
    assertFolderCounts();
  });
});
