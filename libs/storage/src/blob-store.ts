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
export interface BlobStore {
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
 * An optional ability of drivers whose blobs are local files (fs): open one for positional reads, so
 * a front door can send it with reused buffers instead of a stream of fresh ones.
 */
export interface FileBlobStore extends BlobStore {
  /** Opens the blob's file for reading; `not_found` when absent. The caller closes it. */
  openFile(key: string): Promise<FileHandle>;
}

export const canOpenFiles = (store: BlobStore): store is FileBlobStore => typeof (store as Partial<FileBlobStore>).openFile === 'function';
