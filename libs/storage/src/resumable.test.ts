/**
 * Unit tier of resumable uploads: `ResumableUploads` over a real fs blob folder, the in-memory library
 * state and an in-memory upload store (the Redis one is exercised end to end by tests/tus.test.ts).
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '@nondivy/errors';
import { createLogger } from '@nondivy/log';
import { FsBlobStore } from './blob-store-fs.js';
import { Library, type Actor } from './library.js';
import { ResumableHashes } from './resumable-hash.js';
import { REHASH_STATE, ResumableUploads, UploadLockedError, type ReceiveFrom, type ResumableCheckpoint, type ResumableRecord, type ResumableResult, type ResumableUploadStore } from './resumable.js';
import { MemoryLibraryState } from './testing/memory-state.js';

const log = createLogger('resumable-test', 'silent');
const alice: Actor = { username: 'alice', role: 'member' };
const bob: Actor = { username: 'bob', role: 'member' };
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The upload store's rules, in memory (one process): what RedisUploadStore does in its scripts. */
class MemoryUploadStore implements ResumableUploadStore {
  records = new Map<string, ResumableRecord>();
  locks = new Map<string, string>();
  wanted = new Set<string>();
  checkpoints = 0;

  /** What an unfinished upload counts in its owner's bytes cap: its offset while its length is deferred. */
  private counted = (r: ResumableRecord) => (r.lengthDeferred ? r.offset : r.length);

  async create(record: ResumableRecord, limits: { maxCount: number; maxBytes: number }) {
    if (record.place !== undefined && [...this.records.values()].some((r) => r.owner === record.owner && r.place === record.place && !r.finished)) return 'exists' as const;
    const owned = [...this.records.values()].filter((r) => r.owner === record.owner && !r.finished);
    if (owned.length >= limits.maxCount) return 'count' as const;
    if (owned.reduce((n, r) => n + this.counted(r), this.counted(record)) > limits.maxBytes) return 'bytes' as const;
    this.records.set(record.id, structuredClone(record));
    return 'created' as const;
  }
  async get(id: string) {
    const r = this.records.get(id);
    return r ? structuredClone(r) : null;
  }
  async idAt(owner: string, place: string) {
    return [...this.records.values()].find((r) => r.owner === owner && r.place === place && !r.finished)?.id ?? null;
  }
  async checkpoint(id: string, c: ResumableCheckpoint) {
    const r = this.records.get(id);
    if (!r || r.finished || r.offset !== c.from) return false;
    if (c.counted) {
      const others = [...this.records.values()].filter((o) => o.owner === c.counted!.owner && !o.finished && o.id !== id);
      if (others.reduce((n, o) => n + this.counted(o), c.offset) > c.counted.maxBytes) return 'bytes' as const;
    }
    Object.assign(r, { offset: c.offset, hashState: c.hashState, expiresAt: c.expiresAt });
    r.staging = { token: c.token, pieces: [...r.staging.pieces, ...c.pieces] };
    this.checkpoints++;
    return true;
  }
  async finish(id: string, result: ResumableResult, _keepMs: number, length?: number) {
    const r = this.records.get(id);
    if (r) Object.assign(r, { finished: result, length: length ?? r.length, offset: length ?? r.length });
  }
  async remove(id: string) {
    const r = this.records.get(id) ?? null;
    this.records.delete(id);
    return r;
  }
  async lock(id: string, holder: string) {
    if (this.locks.has(id)) return false;
    this.locks.set(id, holder);
    return true;
  }
  async renewLock(id: string, holder: string) {
    if (this.locks.get(id) !== holder) return 'lost' as const;
    return this.wanted.has(id) ? ('wanted' as const) : ('held' as const);
  }
  async wantLock(id: string) {
    if (this.locks.has(id)) this.wanted.add(id);
  }
  async unlock(id: string, holder: string) {
    if (this.locks.get(id) === holder) {
      this.locks.delete(id);
      this.wanted.delete(id);
    }
  }
  async expired(now: number) {
    return [...this.records.values()].filter((r) => !r.finished && r.expiresAt <= now).map((r) => r.id);
  }
}

/** A body of the given pieces, optionally failing (its client going away) after them. */
async function* body(pieces: Buffer[], failAfter = false): AsyncGenerator<Buffer> {
  for (const p of pieces) yield p;
  if (failAfter) throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}

describe('ResumableUploads (fs)', () => {
  let root: string;
  let blobs: FsBlobStore;
  let store: MemoryUploadStore;
  let library: Library;
  let uploads: ResumableUploads;
  const hashes = new ResumableHashes(log, 1);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'nondivy-resumable-'));
  });
  after(async () => {
    await hashes.close();
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await rm(root, { recursive: true, force: true });
    blobs = new FsBlobStore(root);
    await blobs.init();
    store = new MemoryUploadStore();
    library = new Library({ blobs, state: new MemoryLibraryState(), log, maxUploadBytes: 1 << 24 });
    uploads = new ResumableUploads({ library, store, log, expiryMs: 60_000, maxUnfinished: 3, maxUnfinishedBytes: 1 << 22, checkpointBytes: 1000, lockMs: 1000, hashes });
  });

  const create = (length: number, actor: Actor | null = alice) => uploads.create({ length, metadata: 'filename YS5iaW4=', input: { filename: 'a.bin' }, actor });

  it('continues the bytes and the hash across requests, with a checkpoint every checkpointBytes, into an item of the whole file', async () => {
    const data = randomBytes(5000);
    const { id } = await create(data.length);
    const first = await uploads.append(id, alice, 0, body([data.subarray(0, 700), data.subarray(700, 2600)]));
    assert.equal(first.offset, 2600);
    assert.equal(store.checkpoints, 3, 'at 1000, 2000 and the end');
    const last = await uploads.append(id, alice, 2600, body([data.subarray(2600)]));
    assert.equal(last.offset, data.length);
    assert.ok(last.finished);
    const item = await library.get(last.finished.itemId);
    assert.equal(item.sha256, sha256(data));
    assert.equal(item.uploadedBy, 'alice');
    assert.deepEqual(await readdir(join(root, 'staging')), []);
  });

  it('hashes a new upload with a plain hash (REHASH_STATE at its checkpoints); a continuation hashes the staged bytes again once, then saves states', async () => {
    const data = randomBytes(6000);
    const { id } = await create(data.length);
    await assert.rejects(uploads.append(id, alice, 0, body([data.subarray(0, 2500)], true)), (err: AppError) => err.kind === 'bad_input');
    assert.equal(store.records.get(id)!.hashState, REHASH_STATE);
    // The continuation reads the 2500 staged bytes back into a hash whose state can be saved, and
    // records it before its first byte; its own checkpoints then save the state.
    await assert.rejects(uploads.append(id, alice, 2500, body([data.subarray(2500, 3700)], true)), (err: AppError) => err.kind === 'bad_input' && /continues from 3700/.test(err.message));
    const state = store.records.get(id)!.hashState;
    assert.notEqual(state, REHASH_STATE);
    assert.ok(Buffer.from(state, 'base64').length > 32, 'a saved hash-wasm state');
    const done = await uploads.append(id, alice, 3700, body([data.subarray(3700)]));
    assert.equal((await library.get(done.finished!.itemId)).sha256, sha256(data));
    // A state recorded for nothing but the staged bytes (the continuation ended before its first byte) is kept too.
    const other = randomBytes(2000);
    const second = await create(other.length);
    await assert.rejects(uploads.append(second.id, alice, 0, body([other.subarray(0, 1500)], true)), (err: AppError) => err.kind === 'bad_input');
    await assert.rejects(uploads.append(second.id, alice, 1500, body([], true)), (err: AppError) => err.kind === 'bad_input');
    assert.notEqual(store.records.get(second.id)!.hashState, REHASH_STATE);
    const end = await uploads.append(second.id, alice, 1500, body([other.subarray(1500)]));
    assert.equal((await library.get(end.finished!.itemId)).sha256, sha256(other));
  });

  it('keeps what arrived before a client went away, and refuses an offset that is not the durable one (409)', async () => {
    const data = randomBytes(3000);
    const { id } = await create(data.length);
    await assert.rejects(uploads.append(id, alice, 0, body([data.subarray(0, 1234)], true)), (err: AppError) => err.kind === 'bad_input' && /continues from 1234/.test(err.message));
    assert.equal((await uploads.get(id, alice)).offset, 1234);
    await assert.rejects(uploads.append(id, alice, 1000, body([])), (err: AppError) => err.kind === 'conflict');
    const done = await uploads.append(id, alice, 1234, body([data.subarray(1234)]));
    assert.equal((await library.get(done.finished!.itemId)).sha256, sha256(data));
  });

  it('refuses a body longer than the rest: nothing past the last checkpoint kept, nothing committed', async () => {
    const { id } = await create(1500);
    await assert.rejects(uploads.append(id, alice, 0, body([randomBytes(1200), randomBytes(400)])), (err: AppError) => err.kind === 'bad_input');
    assert.equal((await uploads.get(id, alice)).offset, 1000, 'the checkpoint at 1000 stands');
    await assert.rejects(uploads.append(id, alice, 1000, body([]), { contentLength: 501 }), (err: AppError) => err.kind === 'bad_input');
    // The staging file is cut back to the durable offset when the upload continues.
    await uploads.append(id, alice, 1000, body([randomBytes(10)]));
    const [file] = await readdir(join(root, 'staging'));
    assert.equal((await stat(join(root, 'staging', file!))).size, 1010);
  });

  it('an upload is its creator\'s: not found for anyone else, and once expired', async () => {
    const { id } = await create(10);
    await assert.rejects(uploads.get(id, bob), (err: AppError) => err.kind === 'not_found');
    await assert.rejects(uploads.get(id, null), (err: AppError) => err.kind === 'not_found');
    await assert.rejects(uploads.terminate(id, bob), (err: AppError) => err.kind === 'not_found');
    store.records.get(id)!.expiresAt = Date.now() - 1;
    await assert.rejects(uploads.get(id, alice), (err: AppError) => err.kind === 'not_found');
  });

  it('caps: count (429) and announced bytes (413) per owner; lengths over the limit (413)', async () => {
    await create(10);
    await create(10);
    await assert.rejects(create(1 << 22), (err: AppError) => err.kind === 'too_large');
    await create(10);
    await assert.rejects(create(10), (err: AppError) => err.kind === 'rate_limited' && /3 unfinished uploads/.test(err.message));
    await create(10, bob);
    await assert.rejects(create((1 << 24) + 1, bob), (err: AppError) => err.kind === 'too_large');
  });

  it('one writer at a time: a second request is UploadLockedError, and a quiet holder yields when asked', async () => {
    const data = randomBytes(2000);
    const { id } = await create(data.length);
    let release!: () => void;
    const stalled = new Promise<void>((r) => (release = r));
    let stopped: Error | null = null;
    // In a server the client's socket keeps the process alive while its request waits; here the
    // client is a generator with no I/O, and the lock's renewal timer does not hold the process.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      const first = uploads.append(
        id,
        alice,
        0,
        (async function* () {
          yield data.subarray(0, 500);
          await stalled;
        })(),
        { stop: (reason) => ((stopped = reason), release()) },
      );
      await new Promise((r) => setTimeout(r, 50));
      await assert.rejects(uploads.append(id, alice, 0, body([])), (err: unknown) => err instanceof UploadLockedError);
      assert.ok(store.wanted.has(id));
      // Renewals come every 250 ms (lock 1 s); the holder yields once its client has been quiet for 2 s.
      await assert.rejects(first, (err: AppError) => err.kind === 'conflict' && /took over/.test(err.message));
      assert.ok(stopped);
      assert.equal((await uploads.get(id, alice)).offset, 500);
      const done = await uploads.append(id, alice, 500, body([data.subarray(500)]));
      assert.equal((await library.get(done.finished!.itemId)).sha256, sha256(data));
    } finally {
      clearInterval(keepAlive);
    }
  });

  it('terminate and sweep remove the staged bytes and the record; a finished upload answers as done', async () => {
    const a = await create(100);
    await uploads.append(a.id, alice, 0, body([randomBytes(50)]));
    assert.equal((await readdir(join(root, 'staging'))).length, 1);
    await uploads.terminate(a.id, alice);
    assert.deepEqual(await readdir(join(root, 'staging')), []);
    assert.equal(store.records.size, 0);

    const b = await create(100);
    await uploads.append(b.id, alice, 0, body([randomBytes(50)]));
    assert.equal(await uploads.sweep(Date.now()), 0, 'not expired yet');
    assert.equal(await uploads.sweep(Date.now() + 61_000), 1);
    assert.deepEqual(await readdir(join(root, 'staging')), []);

    const data = randomBytes(10);
    const c = await create(10);
    const done = await uploads.append(c.id, alice, 0, body([data]));
    const again = await uploads.append(c.id, alice, 10, body([]));
    assert.deepEqual(again.finished, done.finished);
    await assert.rejects(uploads.append(c.id, alice, 10, body([]), { contentLength: 5 }), (err: AppError) => err.kind === 'conflict');
    const empty = await create(0);
    assert.ok(empty.finished, 'an empty upload is finished at creation');
    assert.equal((await library.get(empty.finished.itemId)).size, 0);
  });

  describe('uploads named by their path (FTP)', () => {
    const place = { kind: 'document' as const, folder: 'Notes', name: 'n.txt' };
    const whole = async () => true;
    const cut = async () => false;
    const receive = (actor: Actor, from: ReceiveFrom, pieces: Buffer[], ended = whole, failAfter = false) =>
      uploads.receiveAt(actor, place, from, {}, body(pieces, failAfter), { ended });

    it('keeps an interrupted body, finds it for its owner only, continues at its offset (REST n) or its end (APPE) into one item', async () => {
      const data = randomBytes(4500);
      const first = await receive(alice, 'start', [data.subarray(0, 1700)], cut);
      assert.equal(first.offset, 1700);
      assert.equal(first.finished, undefined);
      assert.equal((await uploads.findAt(alice, place))?.offset, 1700);
      assert.equal(await uploads.findAt(bob, place), null, 'nobody else finds it');
      await assert.rejects(receive(bob, 1700, [data.subarray(1700)]), (err: AppError) => err.kind === 'not_found');
      await assert.rejects(uploads.get((await uploads.findAt(alice, place))!.id, alice), (err: AppError) => err.kind === 'not_found', 'not reachable by its id (tus)');
      await assert.rejects(receive(alice, 1600, [data.subarray(1600)]), (err: AppError) => err.kind === 'conflict' && /continue from 1700/.test(err.message));
      await assert.rejects(receive(alice, 1700, [data.subarray(1700, 3000)], whole, true), (err: AppError) => err.kind === 'bad_input' && /continues from 3000/.test(err.message), 'a body that failed is never the whole file');
      assert.equal((await uploads.findAt(alice, place))?.offset, 3000);
      const done = await receive(alice, 'end', [data.subarray(3000)]);
      assert.equal(done.offset, data.length);
      const item = await library.get(done.finished!.itemId);
      assert.deepEqual([item.sha256, item.size, item.kind, item.folder, item.uploadedBy], [sha256(data), data.length, 'document', 'Notes', 'alice']);
      assert.equal(await uploads.findAt(alice, place), null);
      assert.deepEqual(await readdir(join(root, 'staging')), []);
    });

    it('a new start drops the kept bytes, an expired one included; a start that kept nothing is forgotten', async () => {
      await receive(alice, 'start', [randomBytes(800)], cut);
      const old = (await uploads.findAt(alice, place))!;
      store.records.get(old.id)!.expiresAt = Date.now() - 1; // expired, not swept yet
      assert.equal(await uploads.findAt(alice, place), null, 'an expired upload is not offered');
      const data = randomBytes(300);
      const done = await receive(alice, 'start', [data]);
      assert.equal((await library.get(done.finished!.itemId)).sha256, sha256(data));
      assert.equal(store.records.has(old.id), false, 'the expired upload was dropped');
      const nothing = await receive(alice, 'start', [], cut);
      assert.equal(nothing.offset, 0);
      assert.equal([...store.records.values()].filter((r) => !r.finished).length, 0);
      assert.deepEqual(await readdir(join(root, 'staging')), []);
    });

    it('bytes past the upload limit remove everything; kept bytes count in the owner\'s bytes cap at their offset', async () => {
      await receive(alice, 'start', [randomBytes(2000)], cut);
      await assert.rejects(receive(alice, 'end', [randomBytes(1 << 24)]), (err: AppError) => err.kind === 'too_large' && /nothing was kept/.test(err.message));
      assert.equal(await uploads.findAt(alice, place), null);
      assert.deepEqual(await readdir(join(root, 'staging')), []);

      // A 10 000-byte cap: 6000 kept here, then another place may keep 4000 more, not 5000.
      const capped = new ResumableUploads({ library, store, log, expiryMs: 60_000, maxUnfinished: 3, maxUnfinishedBytes: 10_000, checkpointBytes: 1000, lockMs: 1000, hashes });
      await capped.receiveAt(alice, place, 'start', {}, body([randomBytes(6000)]), { ended: cut });
      const other = { ...place, name: 'm.txt' };
      await assert.rejects(capped.receiveAt(alice, other, 'start', {}, body([randomBytes(5000)]), { ended: cut }), (err: AppError) => err.kind === 'too_large' && /stays at 4000 bytes/.test(err.message));
      assert.equal((await capped.findAt(alice, other))?.offset, 4000);
      assert.equal((await capped.findAt(alice, place))?.offset, 6000, 'the first is untouched');
      assert.ok(await capped.dropAt(alice, place));
      assert.equal(await capped.dropAt(alice, place), false);
      assert.equal((await readdir(join(root, 'staging'))).length, 1, 'only the refused upload\'s checkpointed bytes');
    });
  });
});
