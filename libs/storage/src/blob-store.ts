import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

/** An inclusive byte range within a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * One write into a blob store. Bytes go in with `write` (awaiting it gives back-pressure); `finish`
 * makes them durable under `key` and only then may anything reference that key; `abort` removes
 * whatever was written. Nothing is readable under `key` before `finish` resolves.
 */
export interface BlobWriter {
  /** The key the blob will have once finished: unique per write, never derived from a name. */
  readonly key: string;
  /** What `BlobStore.discard` needs to clean up this write if its process dies (JSON). */
  readonly token: string;
  /**
   * Adds bytes (awaiting it gives back-pressure). The chunk may still be read after this resolves,
   * until the next `write` (or what ends the writer: finish, sync, abort, close) resolves; never
   * later, so that a chunk lent by an upload body (valid until two more are asked for) is safe.
   */
  write(chunk: Buffer): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

export interface BeginOptions {
  /** Called when the cleanup token changes (an S3 multipart upload got its id). */
  onToken?: (token: string) => void | Promise<void>;
}

/**
 * A store of immutable blobs under opaque keys: the bottom layer of the single storage abstraction.
 * Drivers classify their own failures into AppErrors (`not_found`, `unavailable`) at this boundary.
 */
export interface BlobStore extends ResumableStaging {
  readonly driver: 'fs' | 's3';
  /** Prepares the store (folders, bucket). Safe to call repeatedly. */
  init(): Promise<void>;
  /** Throws `unavailable` when the store cannot serve requests right now. */
  ready(): Promise<void>;
  /** Starts a write; does no I/O until the first `write`, so its token can be recorded first. */
  begin(options?: BeginOptions): BlobWriter;
  /** A stream of the blob's bytes, or of one range of them; `not_found` when absent. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /** The blob's size, or null when it does not exist. */
  stat(key: string): Promise<{ size: number } | null>;
  /** Deletes a blob; deleting a missing blob is not an error. */
  remove(key: string): Promise<void>;
  /** Removes the leftovers of an abandoned write, given its token. Idempotent. */
  discard(token: string): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
}

/**
 * Where a resumable staging area stands, as recorded between requests (in Redis): the driver's
 * token (JSON: what and where) and the pieces it reported as durable so far, in order (s3: the
 * ETags of the parts, part n being `pieces[n - 1]`; fs: none). Kept apart from the token so that a
 * checkpoint adds one piece instead of rewriting a list that grows with the upload.
 */
export interface StagingState {
  token: string;
  pieces: string[];
}

/**
 * Appends to a staging area from a known durable offset (one request's worth of a resumable upload).
 * Bytes are durable only once `sync` resolves; what was written after the last `sync` may be lost
 * when the process dies, and the next `openStaging` sets the area back to the recorded offset.
 */
export interface StagingWriter {
  /**
   * Where syncing is cheapest: at multiples of this many bytes from the start (s3: part boundaries,
   * where nothing but the part is sent); 0: anywhere (fs). Writes may be of any size either way.
   */
  readonly unit: number;
  /** The token to record from now on (s3: the multipart upload's id, once started). */
  readonly token: string;
  /**
   * Adds bytes (awaiting it gives back-pressure). The chunk may still be read after this resolves,
   * until the next `write` (or what ends the writer: finish, sync, abort, close) resolves; never
   * later, so that a chunk lent by an upload body (valid until two more are asked for) is safe.
   */
  write(chunk: Buffer): Promise<void>;
  /**
   * Makes everything written durable; returns the pieces that became durable since the last call.
   * `final`: the upload's last bytes are written (s3 sends a partial part as the last part).
   */
  sync(final?: boolean): Promise<string[]>;
  /**
   * Optional (fs): `sync` in two steps, so that the wait for the disk runs while later bytes are
   * written: resolves once everything written so far is handed to the store, with `durable`, which
   * resolves (as `sync` does) once those bytes are durable. Writes may go on meanwhile.
   */
  syncBehind?(): Promise<{ durable: Promise<string[]> }>;
  /** Releases the writer (file handle, buffers); unsynced bytes are dropped. Idempotent. */
  close(): Promise<void>;
  /**
   * Optional (fs): reads the staged bytes before `end` (at most the durable offset the writer was
   * opened at) back in order, each chunk given to `sink` and reused once its promise resolves. Only
   * before the first `write`. What lets a resumable upload hash with a hash whose state cannot be
   * saved, and hash the staged bytes again when it continues.
   */
  readBack?(end: number, sink: (chunk: Buffer) => Promise<void>): Promise<void>;
}

/**
 * The resumable staging area of a blob store: bytes of one upload appended across requests, processes
 * and restarts, then sealed into a blob under a key of its own (never visible before). Both drivers
 * have it: fs as one file under `staging/`, s3 as a multipart upload whose part list lives with the
 * caller (S3 servers such as s3rver cannot list it).
 */
export interface ResumableStaging {
  /** A new staging area for an upload of `length` bytes; does no I/O, so its token can be recorded first. */
  newStaging(length: number): string;
  /**
   * Opens the area to append at `offset`, the durable offset recorded with `state`: bytes past it
   * (written but never recorded) are dropped. `not_found` when the staged bytes are gone.
   */
  openStaging(state: StagingState, offset: number): Promise<StagingWriter>;
  /** The key the sealed blob will have, and the `BlobStore.discard` token that removes it. Pure. */
  sealTarget(state: StagingState): { key: string; token: string };
  /** Makes the staged `size` bytes the blob `sealTarget(state).key`. */
  sealStaging(state: StagingState, size: number): Promise<void>;
  /** Removes the staging area and its bytes. Idempotent. */
  discardStaging(state: StagingState): Promise<void>;
}

/**
 * An optional ability of drivers whose blobs are local files (fs): open one for positional reads, so
 * a front door can send it with reused buffers instead of a stream of fresh ones.
 */
export interface FileBlobStore extends BlobStore {
  /** Opens the blob's file for reading; `not_found` when absent. The caller closes it. */
  openFile(key: string): Promise<FileHandle>;
}

export const canOpenFiles = (store: BlobStore): store is FileBlobStore => typeof (store as Partial<FileBlobStore>).openFile === 'function';
