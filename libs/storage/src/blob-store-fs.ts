import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError, notFound, unavailable } from '@nondivy/errors';
import type { BeginOptions, BlobWriter, ByteRange, FileBlobStore, StagingState, StagingWriter } from './blob-store.js';

/** Small chunks gathered before one write: fewer, larger system calls. */
const FLUSH_BYTES = 512 * 1024;
/** Read chunk size: large chunks cut per-chunk overhead on the way to the socket. */
export const READ_CHUNK_BYTES = 1024 * 1024;

const KEY_PATTERN = /^objects\/[0-9a-f]{2}\/[0-9a-f-]{36}$/;
const TMP_PATTERN = /^tmp\/[0-9a-f-]{36}$/;
const STAGING_PATTERN = /^staging\/([0-9a-f-]{36})$/;

interface FsToken {
  tmp: string;
  key: string;
}

/** Classifies a file system error once, here. */
function fsError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return notFound('No such blob');
  if (code === 'ENOSPC' || code === 'EDQUOT') return new AppError('too_large', 'The server is out of storage space', { cause: err });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EIO' || code === 'EMFILE' || code === 'ENFILE') {
    return unavailable('The blob store is unavailable', err);
  }
  return err;
}

/** A blob being written is synced behind the writes every this many bytes (see FsBlobWriter.write). */
const SYNC_BEHIND_BYTES = 32 * 1024 * 1024;

/** A chunk at least this large is written as it is (awaited) rather than gathered first. */
const DIRECT_BYTES = 256 * 1024;

/**
 * Writes a file at positions. Large chunks go to the file as they are, one write in flight while
 * the caller goes on: a chunk is read until the next `write` or `flush` resolves, never later (upload
 * bodies lend their chunks: see `LentChunks` in @nondivy/runtime). Small ones (a stream's 16–64 KiB
 * pieces) are copied into one of two reused buffers and go out FLUSH_BYTES at a time, one write in
 * flight while the other buffer fills. Memory: none for large chunks, two buffers once small ones
 * come, whatever the file's size.
 */
class PositionalWriter {
  private buffers: Buffer[] | null = null;
  private current = 0;
  private filled = 0;
  private inflight: Promise<void> | null = null;
  /** Whether the write in flight reads the caller's chunk (not one of the buffers here). */
  private inflightLent = false;

  constructor(
    private readonly file: () => Promise<FileHandle>,
    /** Where the next byte goes. */
    public position: number,
  ) {}

  private async writeAll(h: FileHandle, bytes: Buffer, position: number): Promise<void> {
    let written = 0;
    // A write may take fewer bytes than asked (rare on regular files): write the rest.
    while (written < bytes.length) written += (await h.write(bytes, written, bytes.length - written, position + written)).bytesWritten;
  }

  private async settle(): Promise<void> {
    const inflight = this.inflight;
    this.inflight = null;
    this.inflightLent = false;
    if (inflight) await inflight;
  }

  /** The gathered bytes go out (one write in flight; waits for the previous one). */
  private async send(): Promise<void> {
    if (this.filled === 0) return;
    await this.settle();
    const bytes = this.buffers![this.current]!.subarray(0, this.filled);
    const position = this.position;
    this.position += this.filled;
    this.filled = 0;
    this.current ^= 1;
    const h = await this.file();
    this.inflight = this.writeAll(h, bytes, position);
    this.inflight.catch(() => undefined);
  }

  async write(chunk: Buffer): Promise<void> {
    // Shared memory (an upload body's batch) is written as it is: copying out of it is slow in V8.
    if (chunk.length >= DIRECT_BYTES || chunk.buffer instanceof SharedArrayBuffer) {
      await this.send();
      await this.settle();
      const h = await this.file();
      const position = this.position;
      this.position += chunk.length;
      // In flight while the caller goes on (it hashes the next chunk meanwhile): the chunk is read
      // until the next write or flush resolves, which is as long as a lent chunk stays valid.
      this.inflight = this.writeAll(h, chunk, position);
      this.inflightLent = true;
      this.inflight.catch(() => undefined);
      return;
    }
    // The previous chunk, if it is being written as it is, must be done with before this write
    // resolves (the caller may then be lent a chunk in its place), even though this one is only copied.
    if (this.inflightLent) await this.settle();
    this.buffers ??= [Buffer.allocUnsafeSlow(FLUSH_BYTES), Buffer.allocUnsafeSlow(FLUSH_BYTES)];
    let offset = 0;
    while (offset < chunk.length) {
      const n = chunk.copy(this.buffers[this.current]!, this.filled, offset);
      this.filled += n;
      offset += n;
      if (this.filled === FLUSH_BYTES) await this.send();
    }
  }

  /** Every byte given is in the file (not yet synced). */
  async flush(): Promise<void> {
    await this.send();
    await this.settle();
  }

  /** Whether bytes are gathered or on their way. */
  get busy(): boolean {
    return this.filled > 0 || this.inflight !== null;
  }

  /** Waits for a write in flight, ignoring its outcome (before closing the file). */
  async quiet(): Promise<void> {
    await this.inflight?.catch(() => undefined);
    this.inflight = null;
    this.inflightLent = false;
    this.filled = 0;
  }
}

class FsBlobWriter implements BlobWriter {
  readonly key: string;
  readonly token: string;
  private readonly tmpPath: string;
  private readonly finalPath: string;
  private handle: FileHandle | null = null;
  private opening: Promise<FileHandle> | null = null;
  private readonly out = new PositionalWriter(() => this.file(), 0);
  private done = false;
  /** A data sync of what was written so far, running while more is written; where it was asked. */
  private syncing: Promise<void> | null = null;
  private syncedTo = 0;

  constructor(private readonly root: string) {
    const id = randomUUID();
    const tmp = `tmp/${id}`;
    this.key = `objects/${id.slice(0, 2)}/${id}`;
    this.token = JSON.stringify({ tmp, key: this.key } satisfies FsToken);
    this.tmpPath = join(root, tmp);
    this.finalPath = join(root, this.key);
  }

  private file(): Promise<FileHandle> {
    this.opening ??= open(this.tmpPath, 'wx').then((h) => (this.handle = h));
    return this.opening;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.done) throw new Error('write after finish/abort');
    try {
      await this.out.write(chunk);
    } catch (err) {
      throw fsError(err);
    }
    // Every SYNC_BEHIND_BYTES, the disk is asked to catch up while the body goes on, so that the
    // sync before the answer only waits for the last stretch, not for the whole file.
    if (!this.syncing && this.out.position - this.syncedTo >= SYNC_BEHIND_BYTES && this.handle) {
      this.syncedTo = this.out.position;
      const syncing = this.handle.datasync().finally(() => {
        if (this.syncing === syncing) this.syncing = null;
      });
      syncing.catch(() => undefined);
      this.syncing = syncing;
    }
  }

  async finish(): Promise<void> {
    this.done = true;
    try {
      await this.out.flush();
      await this.syncing;
      const h = await this.file();
      await h.sync();
      await h.close();
      this.handle = null;
      await mkdir(dirname(this.finalPath), { recursive: true });
      await rename(this.tmpPath, this.finalPath);
    } catch (err) {
      throw fsError(err);
    }
  }

  async abort(): Promise<void> {
    this.done = true;
    await this.out.quiet();
    await this.syncing?.catch(() => undefined);
    await this.opening?.catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
    this.handle = null;
    await rm(this.tmpPath, { force: true });
    await rm(this.finalPath, { force: true });
  }
}

interface FsStagingToken {
  file: string;
}

/** The staging file of a token, checked: a token never names a path outside `staging/`. */
function stagingFile(token: string): { file: string; id: string } {
  const t = JSON.parse(token) as FsStagingToken;
  const m = STAGING_PATTERN.exec(t.file ?? '');
  if (!m) throw notFound('No such staging area');
  return { file: t.file, id: m[1]! };
}

/**
 * Appends to one staging file at positional offsets (see `PositionalWriter`: a chunk is never kept
 * once `write` resolves; memory at most two buffers per upload).
 */
class FsStagingWriter implements StagingWriter {
  readonly unit = 0;
  private readonly out: PositionalWriter;
  private closed = false;

  constructor(
    readonly token: string,
    private readonly handle: FileHandle,
    position: number,
  ) {
    this.out = new PositionalWriter(async () => handle, position);
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.closed) throw new Error('write after close');
    try {
      await this.out.write(chunk);
    } catch (err) {
      throw fsError(err);
    }
  }

  async sync(): Promise<string[]> {
    try {
      await this.out.flush();
      await this.handle.datasync();
    } catch (err) {
      throw fsError(err);
    }
    return [];
  }

  async syncBehind(): Promise<{ durable: Promise<string[]> }> {
    try {
      await this.out.flush();
    } catch (err) {
      throw fsError(err);
    }
    const durable = this.handle.datasync().then(
      (): string[] => [],
      (err) => Promise.reject(fsError(err)),
    );
    durable.catch(() => undefined);
    return { durable };
  }

  async readBack(end: number, sink: (chunk: Buffer) => Promise<void>): Promise<void> {
    if (this.closed) throw new Error('read after close');
    if (end > this.out.position || this.out.busy) throw new Error('readBack reads durable bytes before the first write only');
    const buffer = Buffer.allocUnsafeSlow(Math.min(READ_CHUNK_BYTES, Math.max(1, end)));
    try {
      for (let at = 0; at < end; ) {
        const { bytesRead } = await this.handle.read(buffer, 0, Math.min(buffer.length, end - at), at);
        if (bytesRead === 0) throw notFound('The staged bytes of this upload are incomplete');
        await sink(buffer.subarray(0, bytesRead));
        at += bytesRead;
      }
    } catch (err) {
      throw fsError(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.out.quiet();
    await this.handle.close().catch(() => undefined);
  }
}

/**
 * Blobs as files under `root`: `objects/<2 hex>/<uuid>` for committed blobs, `tmp/<uuid>` while
 * writing. A blob appears under its key only by an atomic rename after fsync, so a reader never sees
 * a half-written file; unlinking a blob does not disturb a download already reading it.
 */
export class FsBlobStore implements FileBlobStore {
  readonly driver = 'fs' as const;

  constructor(private readonly root: string) {}

  async init(): Promise<void> {
    try {
      await mkdir(join(this.root, 'tmp'), { recursive: true });
      await mkdir(join(this.root, 'objects'), { recursive: true });
      await mkdir(join(this.root, 'staging'), { recursive: true });
    } catch (err) {
      throw fsError(err);
    }
  }

  async ready(): Promise<void> {
    try {
      await stat(join(this.root, 'objects'));
    } catch (err) {
      throw unavailable('The blob folder is not accessible', err);
    }
  }

  begin(_options?: BeginOptions): BlobWriter {
    return new FsBlobWriter(this.root);
  }

  private path(key: string): string {
    if (!KEY_PATTERN.test(key)) throw notFound('No such blob');
    return join(this.root, key);
  }

  async openFile(key: string): Promise<FileHandle> {
    try {
      return await open(this.path(key), 'r');
    } catch (err) {
      throw fsError(err);
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const handle = await this.openFile(key);
    // The stream owns the open descriptor: the bytes stay readable even if the blob is deleted now.
    return createReadStream('', {
      fd: handle,
      start: range?.start,
      end: range?.end,
      highWaterMark: READ_CHUNK_BYTES,
    });
  }

  async stat(key: string): Promise<{ size: number } | null> {
    try {
      return { size: (await stat(this.path(key))).size };
    } catch (err) {
      const e = fsError(err);
      if (e instanceof AppError && e.kind === 'not_found') return null;
      throw e;
    }
  }

  async remove(key: string): Promise<void> {
    try {
      await rm(this.path(key), { force: true });
    } catch (err) {
      throw fsError(err);
    }
  }

  async discard(token: string): Promise<void> {
    const t = JSON.parse(token) as FsToken;
    if (TMP_PATTERN.test(t.tmp)) await rm(join(this.root, t.tmp), { force: true });
    if (KEY_PATTERN.test(t.key)) await rm(join(this.root, t.key), { force: true });
  }

  newStaging(_length: number): string {
    return JSON.stringify({ file: `staging/${randomUUID()}` } satisfies FsStagingToken);
  }

  /**
   * Opens the upload's staging file (created on its first write) at `offset`: a file longer than
   * that (bytes written after the last recorded checkpoint) is cut back to it; a shorter or missing
   * one (the data folder lost it) is `not_found`.
   */
  async openStaging(state: StagingState, offset: number): Promise<StagingWriter> {
    const { file } = stagingFile(state.token);
    const path = join(this.root, file);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || offset !== 0) throw fsError(err);
      try {
        await mkdir(dirname(path), { recursive: true });
        handle = await open(path, 'w+');
      } catch (e) {
        throw fsError(e);
      }
    }
    try {
      const size = (await handle.stat()).size;
      if (size < offset) throw notFound('The staged bytes of this upload are gone');
      if (size > offset) await handle.truncate(offset);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw fsError(err);
    }
    return new FsStagingWriter(state.token, handle, offset);
  }

  sealTarget(state: StagingState): { key: string; token: string } {
    const { id } = stagingFile(state.token);
    const key = `objects/${id.slice(0, 2)}/${id}`;
    return { key, token: JSON.stringify({ tmp: '', key } satisfies FsToken) };
  }

  /** Renames the staging file to its blob key (the file was synced at its last checkpoint). */
  async sealStaging(state: StagingState, size: number): Promise<void> {
    const { file } = stagingFile(state.token);
    const { key } = this.sealTarget(state);
    const from = join(this.root, file);
    try {
      const st = await stat(from);
      if (st.size !== size) throw notFound('The staged bytes of this upload are incomplete');
      await mkdir(dirname(join(this.root, key)), { recursive: true });
      await rename(from, join(this.root, key));
    } catch (err) {
      throw fsError(err);
    }
  }

  async discardStaging(state: StagingState): Promise<void> {
    const { file } = stagingFile(state.token);
    await rm(join(this.root, file), { force: true });
  }

  /** The staging files of unfinished resumable uploads (for tests and diagnostics). */
  async stagingFiles(): Promise<string[]> {
    try {
      return await readdir(join(this.root, 'staging'));
    } catch {
      return [];
    }
  }

  /** Files currently being written (for tests and diagnostics). */
  tmpDir(): string {
    return join(this.root, 'tmp');
  }

  async close(): Promise<void> {}
}
