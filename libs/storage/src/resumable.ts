import { randomBytes } from 'node:crypto';
import type { Item, ItemKind, StoredUpload, UploadResult } from '@nondivy/contracts';
import { AppError, badInput, conflict, notFound, tooLarge } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import type { BlobStore, StagingState, StagingWriter } from './blob-store.js';
import type { Actor, Library, NewItemInput } from './library.js';
import { hashAndWrite, processHashes } from './hash.js';
import type { ResumableHash, ResumableHashes } from './resumable-hash.js';

/** What a finished resumable upload became (see `StoredUpload` in libs/contracts). */
export type ResumableResult = UploadResult;

/** One resumable upload as recorded between requests. */
export type ResumableRecord = StoredUpload;

/** A durable checkpoint of an upload: recorded after its bytes are synced. */
export interface ResumableCheckpoint {
  /** The offset the record must still have (fencing: a request that lost its lock changes nothing). */
  from: number;
  offset: number;
  hashState: string;
  token: string;
  /** Pieces that became durable since `from` (appended to the recorded list). */
  pieces: string[];
  expiresAt: number;
  /** A deferred-length upload: its owner's unfinished uploads, counted at their offsets, must stay within `maxBytes`. */
  counted?: { owner: string; maxBytes: number };
}

/**
 * Where an upload named by its path goes (an FTP STOR): a kind (none: guessed when it ends, as for
 * FTP's /upload/), a folder within it (`''`: the kind's root) and a file name, all as accepted.
 */
export interface UploadPlace {
  kind?: ItemKind;
  folder: string;
  name: string;
}

/** The key of a place (`StoredUpload.place`): unambiguous whatever the names hold. */
export const uploadPlaceKey = (place: UploadPlace): string => JSON.stringify([place.kind ?? '', place.folder, place.name]);

/** Where a request continues an upload named by its path (see `ResumableUploads.receiveAt`). */
export type ReceiveFrom =
  /** A new upload: one of the actor's unfinished uploads at the place is dropped first (FTP STOR). */
  | 'start'
  /** The durable offset of the actor's unfinished upload there, or a new upload when there is none (FTP APPE). */
  | 'end'
  /** This offset, which must be the durable offset of the actor's unfinished upload there (FTP REST n + STOR). */
  | number;

/**
 * The state of resumable uploads, implemented over Redis by `RedisUploadStore` in libs/state, so that
 * any gateway process can continue any upload. Each method is one atomic step.
 */
export interface ResumableUploadStore {
  /**
   * Creates the record unless its owner is at a cap, or (with `place`) has an unfinished upload there
   * already: then nothing is written and the reason is named. A deferred-length upload counts in the
   * bytes cap at its offset, a known length at its length.
   */
  create(record: ResumableRecord, limits: { maxCount: number; maxBytes: number }): Promise<'created' | 'count' | 'bytes' | 'exists'>;
  get(id: string): Promise<ResumableRecord | null>;
  /** The id of `owner`'s unfinished upload at `place` (a `uploadPlaceKey`), or null. */
  idAt(owner: string, place: string): Promise<string | null>;
  /**
   * False (nothing written) when the upload is gone, finished or not at `from`; `bytes` (nothing
   * written) when `counted` is given and the new offset would bring the owner over its bytes cap.
   */
  checkpoint(id: string, checkpoint: ResumableCheckpoint): Promise<boolean | 'bytes'>;
  /**
   * Marks the upload finished: off its owner's caps, the expiry schedule and its place; the record
   * stays `keepMs`. `length` fixes a deferred length.
   */
  finish(id: string, result: ResumableResult, keepMs: number, length?: number): Promise<void>;
  /** Deletes the upload's record and its entries; what was removed, or null when absent. */
  remove(id: string): Promise<ResumableRecord | null>;
  /** Takes the upload's write lock (across processes) for `ttlMs`; false when held. */
  lock(id: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Extends the lock; `wanted` while another request waits for it (until the lock is released); `lost` when no longer held. */
  renewLock(id: string, holder: string, ttlMs: number): Promise<'held' | 'wanted' | 'lost'>;
  /** Tells the holder that another request waits for the lock. */
  wantLock(id: string): Promise<void>;
  unlock(id: string, holder: string): Promise<void>;
  /** Ids of unfinished uploads whose expiry is before `now`. */
  expired(now: number, limit?: number): Promise<string[]>;
}

export interface ResumableOptions {
  library: Library;
  store: ResumableUploadStore;
  log: Logger;
  /** An unfinished upload silent for this long is swept (and its bytes removed). */
  expiryMs: number;
  /** Unfinished uploads one owner may have. */
  maxUnfinished: number;
  /** Total announced bytes of one owner's unfinished uploads. */
  maxUnfinishedBytes: number;
  /** How long a finished upload still answers HEAD (default: an hour, at most the expiry). */
  finishedKeepMs?: number;
  /** The write lock's time to live; renewed every third of it while bytes flow. */
  lockMs?: number;
  /** fs: bytes between two checkpoints within one request (s3 checkpoints at every part). */
  checkpointBytes?: number;
  /** Where hashes are computed (default: the process's shared hash threads, see hash.ts; closed by `close` when given). */
  hashes?: ResumableHashes;
}

/** Another request of this upload holds its write lock: answered 423, which tus clients retry. */
export class UploadLockedError extends AppError {
  constructor() {
    super('conflict', 'Another request is writing to this upload; retry in a moment', { retryAfter: 1 });
    this.name = 'UploadLockedError';
  }
}

/** What a request's bytes did to an upload. */
export interface AppendResult {
  offset: number;
  expiresAt: number;
  finished?: ResumableResult;
}

/** A new upload id: 22 url-safe characters, 128 bits. */
export const newUploadId = () => randomBytes(16).toString('base64url');

/** The guest's name as an owner (a reserved username, so no account has it). */
const GUEST = 'guest';
const ownerOf = (actor: Actor | null) => actor?.username ?? GUEST;

/** A body chunk crossing the upload's end: the request is refused, nothing of it past the length is kept. */
class OverflowError extends Error {}

/** A holder stops when asked for its lock after this long without bytes (its client is probably gone). */
const IDLE_YIELD_MS = 2000;

/**
 * The `hashState` of an upload whose bytes so far went through a hash whose state cannot be saved
 * (Node's own SHA-256, see `write`): the request that continues it hashes its staged bytes again from
 * the start. Not base64 of a state of the right length, so a process that does not know it fails to
 * load it rather than continuing a wrong hash.
 */
export const REHASH_STATE = 'rehash-from-0';

/**
 * Resumable uploads (the tus protocol's core, in protocol-free terms): an upload of a known length
 * is created, its bytes arrive over any number of requests, each continuing at the durable offset,
 * from any gateway process, and the item is committed through the Library (same events, dedupe and
 * index as every upload) once the last byte is in.
 *
 * Bytes go to the blob store's staging area (fs: one file; s3: multipart parts) and through a
 * SHA-256 whose state (hash-wasm's `save`) is recorded in Redis with the offset at every durable
 * checkpoint, so no byte is read twice, even after a restart — except on fs, where a request that
 * starts an upload hashes with Node's own SHA-256 (cheaper, but its state cannot be saved) and the
 * staged bytes are read and hashed again only if the upload has to be continued (see `write`). A
 * request holds the upload's write lock (SET NX PX, renewed while it runs); a second request gets
 * `UploadLockedError`, and a holder whose client went quiet yields to it within seconds. Memory per request: one s3 part, or the fs writer's
 * small buffers.
 */
export class ResumableUploads {
  readonly expiryMs: number;
  private readonly library: Library;
  private readonly blobs: BlobStore;
  private readonly store: ResumableUploadStore;
  private readonly log: Logger;
  private readonly maxUnfinished: number;
  private readonly maxUnfinishedBytes: number;
  private readonly finishedKeepMs: number;
  private readonly lockMs: number;
  private readonly checkpointBytes: number;
  private readonly hashes: ResumableHashes;
  /** Hashes given in the options are closed by `close`; the process's shared ones are not. */
  private readonly ownHashes: boolean;
  /** Requests writing now, stopped (checkpointed, lock released) when the process shuts down. */
  private readonly active = new Map<(reason: AppError) => void, Promise<void>>();

  constructor(options: ResumableOptions) {
    this.library = options.library;
    this.blobs = options.library.blobs;
    this.store = options.store;
    this.log = options.log;
    this.expiryMs = options.expiryMs;
    this.maxUnfinished = options.maxUnfinished;
    this.maxUnfinishedBytes = options.maxUnfinishedBytes;
    this.finishedKeepMs = options.finishedKeepMs ?? Math.min(options.expiryMs, 3600_000);
    this.lockMs = options.lockMs ?? 8000;
    this.checkpointBytes = options.checkpointBytes ?? 16 * 1024 * 1024;
    this.ownHashes = options.hashes !== undefined;
    this.hashes = options.hashes ?? processHashes(options.log);
  }

  get maxUploadBytes(): number {
    return this.library.maxUploadBytes;
  }

  /**
   * Creates an upload of `length` bytes for `actor` with its validated item fields (`input`) and the
   * metadata as sent. Refuses lengths over the upload limit (413) and owners at a cap: 429 at
   * `maxUnfinished` uploads, 413 past `maxUnfinishedBytes`. An empty upload is finished at once.
   */
  async create(options: { length: number; metadata: string; input: NewItemInput; actor: Actor | null }): Promise<ResumableRecord> {
    const { length, actor } = options;
    if (!Number.isSafeInteger(length) || length < 0) throw badInput('Upload-Length must be a whole number of bytes');
    if (length > this.maxUploadBytes) throw tooLarge(`The file is larger than the limit of ${this.maxUploadBytes} bytes`);
    const now = Date.now();
    const record: ResumableRecord = {
      id: newUploadId(),
      owner: ownerOf(actor),
      length,
      offset: 0,
      metadata: options.metadata,
      input: options.input,
      hashState: '',
      staging: { token: this.blobs.newStaging(length), pieces: [] },
      createdAt: now,
      expiresAt: now + this.expiryMs,
    };
    const created = await this.store.create(record, { maxCount: this.maxUnfinished, maxBytes: this.maxUnfinishedBytes });
    if (created === 'count') {
      throw new AppError('rate_limited', `You have ${this.maxUnfinished} unfinished uploads, the most allowed: finish or delete one (DELETE its URL), or wait until they expire`);
    }
    if (created === 'bytes') {
      throw tooLarge(`This upload would bring your unfinished uploads over ${this.maxUnfinishedBytes} bytes, the most allowed: finish or delete some first`);
    }
    this.log.info({ upload: record.id, length, by: record.owner }, 'resumable upload created');
    if (length === 0) {
      const { finished } = await this.append(record.id, actor, 0, (async function* () {})());
      return { ...record, finished };
    }
    return record;
  }

  /**
   * The upload as `actor` may see it by its id: `not_found` for anyone but its creator, once expired,
   * and for uploads named by their path (FTP's), which are reached by their place only.
   */
  async get(id: string, actor: Actor | null): Promise<ResumableRecord> {
    const record = await this.load(id, actor);
    if (record.place !== undefined) throw notFound('No such upload');
    return record;
  }

  private async load(id: string, actor: Actor | null): Promise<ResumableRecord> {
    const record = await this.store.get(id);
    if (!record || record.owner !== ownerOf(actor) || (!record.finished && record.expiresAt <= Date.now())) throw notFound('No such upload');
    return record;
  }

  /**
   * Appends `body` at `offset`, which must be the upload's durable offset (409 otherwise), and
   * returns the new durable offset, with the item once the last byte is in. A body that ends early
   * (its client went away) keeps what arrived (fs: every byte; s3: all but nothing, see the staging
   * writer); a body longer than the rest of the upload is refused (400) and nothing past the length
   * is written. `contentLength`, when known, is checked before a byte is read.
   */
  async append(id: string, actor: Actor | null, offset: number, body: AsyncIterable<Buffer>, options: { contentLength?: number; stop?: (reason: Error) => void } = {}): Promise<AppendResult> {
    const record = await this.get(id, actor);
    if (record.finished) {
      if (offset === record.length && !options.contentLength) return { offset: record.length, expiresAt: record.expiresAt, finished: record.finished };
      throw conflict('This upload is complete');
    }
    return this.appendLocked(record, actor, offset, body, options);
  }

  private async appendLocked(
    record: ResumableRecord,
    actor: Actor | null,
    offset: number,
    body: AsyncIterable<Buffer>,
    options: { contentLength?: number; stop?: (reason: Error) => void; ended?: () => Promise<boolean>; fresh?: boolean },
  ): Promise<AppendResult> {
    const { id } = record;
    const holder = randomBytes(12).toString('base64url');
    if (!(await this.store.lock(id, holder, this.lockMs))) {
      await this.store.wantLock(id);
      throw new UploadLockedError();
    }
    try {
      // Read again under the lock: the request that held it may have moved the offset.
      record = await this.load(id, actor);
      if (record.finished) throw conflict('This upload is complete');
      // The offset is checked under the lock: while another request writes, the answer is "busy"
      // (423, retried) rather than a mismatch with an offset about to change.
      if (offset !== record.offset) {
        throw conflict(
          record.place === undefined
            ? `Upload-Offset ${offset} is not the upload's offset (${record.offset}): ask for it with HEAD`
            : `Restart offset ${offset} is not where this unfinished upload stands (${record.offset} bytes): continue from ${record.offset}`,
        );
      }
      const rest = record.length - record.offset;
      if (options.contentLength !== undefined && options.contentLength > rest) {
        throw badInput(`The body (${options.contentLength} bytes) is longer than the rest of the upload (${rest} bytes)`);
      }
      let result: AppendResult;
      try {
        result = await this.write(record, actor, holder, body, options.stop, options.ended);
      } catch (err) {
        // A new upload that kept nothing is not kept (an interrupted FTP STOR before its first byte).
        if (options.fresh && !(err instanceof AppError && err.kind === 'unavailable')) await this.forgetIfEmpty(id);
        throw err;
      }
      if (options.fresh && !result.finished && result.offset === 0) await this.forgetIfEmpty(id);
      return result;
    } finally {
      await this.store.unlock(id, holder).catch((err) => this.log.warn({ err, upload: id }, 'could not release an upload lock; it expires by itself'));
    }
  }

  private async openWriter(record: ResumableRecord): Promise<StagingWriter> {
    try {
      return await this.blobs.openStaging(record.staging, record.offset);
    } catch (err) {
      if (err instanceof AppError && err.kind === 'not_found') {
        // The staged bytes are lost (a data folder restored from a backup, a bucket emptied): this
        // upload cannot continue. Say so once and forget it.
        this.log.warn({ upload: record.id, offset: record.offset }, 'resumable upload lost its staged bytes');
        await this.forget(record.id);
        throw notFound('The bytes of this upload are gone: start it again');
      }
      throw err;
    }
  }

  /** Forgets a new upload that has no durable byte (still under its lock). */
  private async forgetIfEmpty(id: string): Promise<void> {
    const record = await this.store.get(id).catch(() => null);
    if (record && !record.finished && record.offset === 0) await this.forget(id).catch((err) => this.log.warn({ err, upload: id }, 'could not remove an empty upload; the sweeper will'));
  }

  private async write(
    record: ResumableRecord,
    actor: Actor | null,
    holder: string,
    body: AsyncIterable<Buffer>,
    stopBody?: (reason: Error) => void,
    ended?: () => Promise<boolean>,
  ): Promise<AppendResult> {
    const { id, length } = record;
    const deferred = record.lengthDeferred === true;
    const writer = await this.openWriter(record);
    // A request that starts an upload whose staged bytes can be read back (fs) hashes with Node's own
    // SHA-256, about five times cheaper than hash-wasm's but with a state that cannot be saved: its
    // checkpoints record REHASH_STATE, and a request that continues the upload after an interruption
    // hashes the staged bytes again (with hash-wasm's, saved from then on at every checkpoint). An
    // upload that arrives in one request, the common case, is hashed once at the cheaper cost.
    const plain = record.offset === 0 && !record.hashState && typeof writer.readBack === 'function';
    const rehash = record.hashState === REHASH_STATE;
    let hasher: ResumableHash;
    try {
      if (rehash && !writer.readBack) throw new Error('this upload\'s staged bytes cannot be read back to hash them again');
      if (plain) hasher = await this.hashes.openPlain();
      else hasher = await this.hashes.open(record.hashState && !rehash ? Buffer.from(record.hashState, 'base64') : null);
    } catch (err) {
      await writer.close();
      throw err;
    }
    let durable = record.offset;
    let expiresAt = record.expiresAt;
    const pieces = [...record.staging.pieces];
    let token = record.staging.token;
    let position = record.offset;
    let lastByteAt = Date.now();
    let stopped: AppError | null = null;

    const stop = (reason: AppError) => {
      if (stopped) return;
      stopped = reason;
      stopBody?.(reason);
    };
    let settle!: () => void;
    this.active.set(stop, new Promise<void>((resolve) => (settle = resolve)));
    const renew = setInterval(() => {
      this.store.renewLock(id, holder, this.lockMs).then(
        (state) => {
          if (state === 'lost') stop(conflict('This request lost the upload\'s lock; continue the upload from its offset'));
          else if (state === 'wanted' && Date.now() - lastByteAt > IDLE_YIELD_MS) stop(conflict('Another request took over this upload'));
        },
        (err) => this.log.warn({ err, upload: id }, 'could not renew an upload lock'),
      );
    }, Math.max(200, Math.floor(this.lockMs / 4)));
    renew.unref();

    /**
     * Records the bytes so far as durable. `behind` (a checkpoint within the body, where the store
     * can do it: fs): the wait for the disk and the record run while the next bytes are written,
     * rather than stalling the body at every checkpoint; one at a time, and any failure of it shows
     * at the next checkpoint or at the end.
     */
    let inFlight: Promise<void> | null = null;
    const settleBehind = async () => {
      const pending = inFlight;
      inFlight = null;
      if (pending) await pending;
    };
    const checkpoint = async (behind = false) => {
      await settleBehind();
      const at = position;
      // The hash's state after byte `at`: asked for now, before any later byte is given to it.
      const saved = plain ? null : hasher.save();
      saved?.catch(() => undefined);
      const background = behind && writer.syncBehind !== undefined;
      const synced: Promise<string[]> = background ? (await writer.syncBehind!()).durable : writer.sync();
      synced.catch(() => undefined);
      const commitCheckpoint = async () => {
        const added = await synced;
        pieces.push(...added);
        const next = Date.now() + this.expiryMs;
        const counted = deferred ? { owner: record.owner, maxBytes: this.maxUnfinishedBytes } : undefined;
        const hashState = saved ? Buffer.from(await saved).toString('base64') : REHASH_STATE;
        const ok = await this.store.checkpoint(id, { from: durable, offset: at, hashState, token: writer.token, pieces: added, expiresAt: next, counted });
        if (ok === 'bytes') {
          throw tooLarge(`Your unfinished uploads would hold more than ${this.maxUnfinishedBytes} bytes, the most allowed: finish or delete some first; this one stays at ${durable} bytes`);
        }
        if (!ok) throw conflict('This upload changed or ended meanwhile');
        durable = at;
        expiresAt = next;
        token = writer.token;
      };
      if (!background) return commitCheckpoint();
      inFlight = commitCheckpoint();
      inFlight.catch(() => undefined);
    };

    const unit = writer.unit;
    const nextStop = (from: number) => (unit > 0 ? (Math.floor(from / unit) + 1) * unit : from + this.checkpointBytes);
    let checkpointAt = nextStop(position);
    let failure: unknown = null;
    try {
      if (writer.token !== token) {
        // The store started its staging (s3: the multipart upload's id): record it before any part.
        if (!(await this.store.checkpoint(id, { from: durable, offset: durable, hashState: record.hashState, token: writer.token, pieces: [], expiresAt }))) {
          throw conflict('This upload changed or ended meanwhile');
        }
        token = writer.token;
      }
      if (rehash) {
        // The staged bytes were hashed with a state that could not be saved: hash them again, then
        // record the state so that this work is not lost if the request ends before its first byte.
        await writer.readBack!(durable, (chunk) => {
          if (stopped) throw stopped;
          lastByteAt = Date.now(); // busy, not quiet: a request that wants the lock waits
          return hasher.update(chunk);
        });
        const next = Date.now() + this.expiryMs;
        const hashState = Buffer.from(await hasher.save()).toString('base64');
        if (!(await this.store.checkpoint(id, { from: durable, offset: durable, hashState, token: writer.token, pieces: [], expiresAt: next }))) {
          throw conflict('This upload changed or ended meanwhile');
        }
        expiresAt = next;
        lastByteAt = Date.now();
        this.log.info({ upload: id, offset: durable }, 'resumable upload: staged bytes hashed again');
      }
      // Read errors (a client that went away, or was cut off) end the body and keep what came;
      // write errors (the store) fail the request.
      const source = body[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await source.next();
        } catch (err) {
          failure = err;
          break;
        }
        if (next.done) break;
        if (stopped) {
          await source.return?.();
          break;
        }
        lastByteAt = Date.now();
        let chunk = next.value;
        // Left unread (not destroyed), so that the refusal can still be answered.
        if (position + chunk.length > length) throw new OverflowError();
        // Cut at checkpoint boundaries: s3 syncs cheapest at whole parts.
        while (chunk.length > 0) {
          const take = Math.min(chunk.length, checkpointAt - position);
          const piece = take === chunk.length ? chunk : chunk.subarray(0, take);
          await hashAndWrite(hasher, (c) => writer.write(c), piece);
          position += piece.length;
          chunk = chunk.subarray(take);
          if (position === checkpointAt && position < length) {
            await checkpoint(true);
            checkpointAt = nextStop(position);
          }
        }
      }
      if (deferred) {
        // The body ended: the whole file when the door says so (FTP: the data connection closed
        // cleanly and the session is still there), else an interruption whose bytes are kept.
        if (!failure && !stopped && ended && (await ended())) {
          await settleBehind();
          return await this.finish(record, actor, writer, hasher, pieces, token, position);
        }
      } else if (position === length) {
        await settleBehind();
        return await this.finish(record, actor, writer, hasher, pieces, token);
      }
      if (position > durable) await checkpoint();
      if (stopped) throw stopped;
      // The client is most likely gone; the answer (and the log) says where the upload stands.
      if (failure) throw badInput(`The body ended early (${(failure as Error)?.message?.slice(0, 80) ?? 'cut off'}); the upload continues from ${durable}`);
      return { offset: durable, expiresAt };
    } catch (err) {
      if (err instanceof OverflowError && deferred) {
        // Past the upload limit: nothing of this upload is kept, as for any upload over the limit.
        this.log.info({ upload: id, limit: length }, 'resumable upload over the upload limit; removed');
        clearInterval(renew);
        await writer.close();
        await this.forget(id).catch((e) => this.log.warn({ err: e, upload: id }, 'could not remove an upload over the limit; the sweeper will'));
        durable = position; // nothing to report as dropped: all of it went
        throw tooLarge(`The file is larger than the limit of ${length} bytes; nothing was kept`);
      }
      if (err instanceof OverflowError) {
        this.log.info({ upload: id, offset: durable }, 'resumable upload body longer than its length; refused');
        throw badInput(`The body is longer than the rest of the upload (${length - record.offset} bytes); nothing past the upload's length was kept`);
      }
      throw err;
    } finally {
      await settleBehind().catch(() => undefined);
      clearInterval(renew);
      this.active.delete(stop);
      hasher.close();
      await writer.close();
      if (stopped) this.log.info({ upload: id, offset: durable, reason: (stopped as AppError).message }, 'resumable upload request stopped');
      if (position > durable) this.log.info({ upload: id, offset: durable, dropped: position - durable }, 'resumable upload request ended; bytes after the durable offset dropped');
      settle();
    }
  }

  private async finish(
    record: ResumableRecord,
    actor: Actor | null,
    writer: StagingWriter,
    hasher: ResumableHash,
    pieces: string[],
    token: string,
    length = record.length,
  ): Promise<AppendResult> {
    pieces.push(...(await writer.sync(true)));
    const staging: StagingState = { token: writer.token ?? token, pieces };
    const sha256 = await hasher.digest();
    const target = this.blobs.sealTarget(staging);
    let item: Item;
    try {
      item = await this.library.commitSealed(
        { key: target.key, token: target.token, sha256, size: length, seal: () => this.blobs.sealStaging(staging, length) },
        record.input,
        actor,
      );
    } catch (err) {
      if (!(err instanceof AppError && err.kind === 'unavailable')) {
        // Refused for good (a folder became a file, the size limit changed…): the upload ends here.
        await this.forget(record.id).catch(() => undefined);
      }
      throw err;
    }
    const name = item.path ? null : await this.library.nameOf(item.id);
    const result: ResumableResult = { itemId: item.id, path: item.path ?? (name ? `/library/${item.kind}/${item.folder ? `${item.folder}/` : ''}${name}` : null) };
    await this.store.finish(record.id, result, this.finishedKeepMs, record.lengthDeferred ? length : undefined);
    this.log.info({ upload: record.id, id: item.id, size: length }, 'resumable upload finished');
    return { offset: length, expiresAt: Date.now() + this.finishedKeepMs, finished: result };
  }

  // ---- uploads named by their path (FTP) -------------------------------------------------------

  /** `actor`'s unfinished upload at `place`, or null (none, or expired): nobody else's is ever found. */
  async findAt(actor: Actor, place: UploadPlace): Promise<ResumableRecord | null> {
    const owner = ownerOf(actor);
    const id = await this.store.idAt(owner, uploadPlaceKey(place));
    if (!id) return null;
    const record = await this.store.get(id);
    if (!record || record.owner !== owner || record.finished || record.expiresAt <= Date.now()) return null;
    return record;
  }

  /**
   * Receives `body` into `actor`'s upload at `place`, whose length nobody announced (an FTP STOR):
   * a new upload (`start`), or the continuation of the unfinished one there (`end`: at its durable
   * offset, or new when there is none; a number: at that offset, which must be the durable one). When
   * the body ends, `ended` says whether it was the whole file: then the upload becomes an item
   * (through the Library, with the SHA-256 of every byte of every request) and the result says so;
   * otherwise, and when the body fails or stops, its bytes are kept (made durable: fs every byte,
   * s3 whole parts and a tail object) and the result gives the durable offset. A new upload that
   * kept nothing is forgotten. Same caps, lock, checkpoints and expiry as `create` and `append`;
   * bytes past the upload limit remove the whole upload (`too_large`).
   */
  async receiveAt(
    actor: Actor,
    place: UploadPlace,
    from: ReceiveFrom,
    input: NewItemInput,
    body: AsyncIterable<Buffer>,
    options: { ended: () => Promise<boolean>; stop?: (reason: Error) => void },
  ): Promise<AppendResult> {
    let record = from === 'start' ? null : await this.findAt(actor, place);
    if (typeof from === 'number' && !record) {
      throw notFound(`You have no unfinished upload of ${place.name} here to continue: send it whole (STOR without REST)`);
    }
    const fresh = !record;
    if (!record) record = await this.startAt(actor, place, input);
    const offset = typeof from === 'number' ? from : record.offset;
    return this.appendLocked(record, actor, offset, body, { ...options, fresh });
  }

  /** Drops `actor`'s unfinished upload at `place` (its staged bytes too); false when there is none. */
  async dropAt(actor: Actor, place: UploadPlace): Promise<boolean> {
    // Expired but not yet swept counts too: it still holds the place (and its staged bytes).
    const owner = ownerOf(actor);
    const id = await this.store.idAt(owner, uploadPlaceKey(place));
    const record = id ? await this.store.get(id) : null;
    if (!record || record.owner !== owner || record.finished) return false;
    await this.terminateLocked(record.id, owner);
    return true;
  }

  /** A new deferred-length upload at `place`, after dropping the actor's unfinished one there. */
  private async startAt(actor: Actor, place: UploadPlace, input: NewItemInput): Promise<ResumableRecord> {
    const key = uploadPlaceKey(place);
    for (let attempt = 0; ; attempt++) {
      await this.dropAt(actor, place);
      const now = Date.now();
      const record: ResumableRecord = {
        id: newUploadId(),
        owner: ownerOf(actor),
        length: this.maxUploadBytes,
        lengthDeferred: true,
        place: key,
        offset: 0,
        metadata: '',
        input: { ...input, filename: place.name, folder: place.folder, ...(place.kind ? { kind: place.kind } : {}) },
        hashState: '',
        staging: { token: this.blobs.newStaging(this.maxUploadBytes), pieces: [] },
        createdAt: now,
        expiresAt: now + this.expiryMs,
      };
      const created = await this.store.create(record, { maxCount: this.maxUnfinished, maxBytes: this.maxUnfinishedBytes });
      if (created === 'exists' && attempt < 2) continue; // another session started one there meanwhile
      if (created === 'exists') throw new UploadLockedError();
      if (created === 'count') {
        throw new AppError('rate_limited', `You have ${this.maxUnfinished} unfinished uploads, the most allowed: finish or delete one, or wait until they expire`);
      }
      if (created === 'bytes') throw tooLarge(`Your unfinished uploads hold ${this.maxUnfinishedBytes} bytes or more, the most allowed: finish or delete some first`);
      this.log.info({ upload: record.id, by: record.owner }, 'resumable upload created (length deferred)');
      return record;
    }
  }

  /** Removes an upload's record and staged bytes (the staged bytes first: a failure leaves the record for the sweeper). */
  private async forget(id: string): Promise<void> {
    const record = await this.store.get(id);
    if (!record) return;
    if (!record.finished) await this.blobs.discardStaging(record.staging);
    await this.store.remove(id);
  }

  /**
   * Ends an upload (tus termination): its staged bytes are removed and its URL answers 404 from now
   * on. A request writing to it at the moment makes this one `UploadLockedError`.
   */
  async terminate(id: string, actor: Actor | null): Promise<void> {
    await this.get(id, actor);
    await this.terminateLocked(id, ownerOf(actor));
  }

  private async terminateLocked(id: string, by: string): Promise<void> {
    const holder = randomBytes(12).toString('base64url');
    if (!(await this.store.lock(id, holder, this.lockMs))) {
      await this.store.wantLock(id);
      throw new UploadLockedError();
    }
    try {
      await this.forget(id);
      this.log.info({ upload: id, by }, 'resumable upload terminated');
    } finally {
      await this.store.unlock(id, holder).catch(() => undefined);
    }
  }

  /** Removes expired unfinished uploads (staged bytes, then record). Safe from several processes at once. */
  async sweep(now = Date.now()): Promise<number> {
    let swept = 0;
    for (const id of await this.store.expired(now)) {
      const holder = randomBytes(12).toString('base64url');
      if (!(await this.store.lock(id, holder, this.lockMs))) continue; // being written: not abandoned
      try {
        const record = await this.store.get(id);
        if (record && !record.finished && record.expiresAt > now) continue; // revived meanwhile
        await this.forget(id);
        swept++;
      } finally {
        await this.store.unlock(id, holder).catch(() => undefined);
      }
    }
    if (swept) this.log.info({ uploads: swept }, 'swept expired resumable uploads');
    return swept;
  }

  /** Runs `sweep` now and then every `intervalMs`; returns a function that stops it. */
  startSweeper(intervalMs = Math.max(1000, Math.min(60_000, Math.floor(this.expiryMs / 4)))): () => void {
    let running = false;
    const run = async () => {
      if (running) return;
      running = true;
      try {
        await this.sweep();
      } catch (err) {
        this.log.warn({ err }, 'resumable upload sweep failed; will retry');
      } finally {
        running = false;
      }
    };
    void run();
    const timer = setInterval(run, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Stops the hash threads given in the options (after the requests have ended); the shared ones stop being referenced when idle. */
  async close(): Promise<void> {
    if (this.ownHashes) await this.hashes.close();
  }

  /** Stops every request writing now and waits until each has checkpointed what it has and released its lock: at shutdown. */
  async stopAll(timeoutMs = 5000): Promise<void> {
    const ending = [...this.active.values()];
    for (const stop of [...this.active.keys()]) stop(new AppError('unavailable', 'The server is shutting down: continue the upload in a moment', { retryAfter: 2 }));
    // Each ends with a checkpoint, which needs Redis and the blob store: wait for them (a while).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(ending), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}
