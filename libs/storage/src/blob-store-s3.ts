import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import type { Client } from 'minio';
import { AppError, notFound, unavailable } from '@nondivy/errors';
import type { BeginOptions, BlobStore, BlobWriter, ByteRange, StagingState, StagingWriter } from './blob-store.js';

export interface S3Options {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
  /** Size of each multipart part (≥ 5 MiB). Memory per upload is 3 parts, allocated once. */
  partSize: number;
  /** Time limit for metadata calls (stat, bucket checks), ms. */
  timeoutMs?: number;
}

/** Parts uploaded concurrently per write: the next part gathers while two are in flight. */
const PART_CONCURRENCY = 2;
/** S3 allows 10 000 parts; past every 1000 parts the part size doubles, so any object size fits. */
const PARTS_PER_SIZE_STEP = 1000;
const KEY_PATTERN = /^blobs\/[0-9a-f]{2}\/[0-9a-f-]{36}$/;

interface S3Token {
  key: string;
  uploadId?: string;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** Classifies an S3 or network error once, here. */
export function s3Error(err: unknown): unknown {
  if (err instanceof AppError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e?.code === 'NoSuchKey' || e?.code === 'NotFound' || e?.code === 'NoSuchUpload') return notFound('No such blob');
  if (e?.code && NETWORK_CODES.has(e.code)) return unavailable('The blob store is unavailable', err);
  if (e?.code === 'NoSuchBucket' || e?.code === 'AccessDenied' || e?.code === 'InvalidAccessKeyId' || e?.code === 'SignatureDoesNotMatch') {
    return unavailable('The blob store refused the request (check the S3 settings)', err);
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 500) return unavailable('The blob store is unavailable', err);
  if (e?.message && /socket hang up|other side closed|premature close/i.test(e.message)) return unavailable('The blob store is unavailable', err);
  return err;
}

async function s3Call<T>(fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const call = fn();
    if (!timeoutMs) return await call;
    return await Promise.race([
      call,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(unavailable('The blob store did not answer in time')), timeoutMs);
      }),
    ]);
  } catch (err) {
    throw s3Error(err);
  } finally {
    clearTimeout(timer);
  }
}

class S3BlobWriter implements BlobWriter {
  readonly key: string;
  private uploadId: string | undefined;
  /** The part being filled, and how many bytes it holds. */
  private current: Buffer | null = null;
  private filled = 0;
  /** Part buffers free for reuse: at most PART_CONCURRENCY + 1 exist per write, whatever the size. */
  private readonly free: Buffer[] = [];
  private partNumber = 0;
  private readonly parts: { part: number; etag: string }[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown = null;
  private done = false;

  constructor(
    private readonly store: S3BlobStore,
    private readonly options?: BeginOptions,
  ) {
    const id = randomUUID();
    this.key = `blobs/${id.slice(0, 2)}/${id}`;
  }

  get token(): string {
    return JSON.stringify({ key: this.key, uploadId: this.uploadId } satisfies S3Token);
  }

  private partSize(): number {
    return this.store.partSize * 2 ** Math.floor(this.partNumber / PARTS_PER_SIZE_STEP);
  }

  private takeBuffer(): Buffer {
    const size = this.partSize();
    const reused = this.free.pop();
    return reused && reused.length === size ? reused : Buffer.allocUnsafeSlow(size);
  }

  private async startMultipart(): Promise<void> {
    this.uploadId = await s3Call(() => this.store.client.initiateNewMultipartUpload(this.store.bucket, this.key, {}));
    await this.options?.onToken?.(this.token);
  }

  private async sendPart(): Promise<void> {
    if (!this.uploadId) await this.startMultipart();
    const buffer = this.current!;
    const body = buffer.subarray(0, this.filled);
    this.current = null;
    this.filled = 0;
    const part = ++this.partNumber;
    const p = s3Call(() =>
      this.store.client.uploadPart({ bucketName: this.store.bucket, objectName: this.key, uploadID: this.uploadId!, partNumber: part, headers: {} }, body),
    ).then(
      (res) => {
        this.parts.push({ part, etag: res.etag });
      },
      (err) => {
        this.failure ??= err;
      },
    );
    this.inflight.add(p);
    void p.finally(() => {
      this.inflight.delete(p);
      if (!this.done) this.free.push(buffer);
    });
    while (this.inflight.size >= PART_CONCURRENCY) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.done) throw new Error('write after finish/abort');
    let offset = 0;
    while (offset < chunk.length) {
      this.current ??= this.takeBuffer();
      const n = chunk.copy(this.current, this.filled, offset);
      this.filled += n;
      offset += n;
      if (this.filled === this.current.length) await this.sendPart();
    }
  }

  async finish(): Promise<void> {
    this.done = true;
    if (!this.uploadId) {
      // Small blob: one PUT of a known size. The minio client does not list multipart uploads for it.
      const body = this.current ? this.current.subarray(0, this.filled) : Buffer.alloc(0);
      this.current = null;
      await s3Call(() => this.store.client.putObject(this.store.bucket, this.key, body, body.length));
      return;
    }
    if (this.filled > 0) await this.sendPart();
    await Promise.all(this.inflight);
    if (this.failure) throw this.failure;
    const etags = [...this.parts].sort((a, b) => a.part - b.part);
    await s3Call(() => this.store.client.completeMultipartUpload(this.store.bucket, this.key, this.uploadId!, etags));
  }

  async abort(): Promise<void> {
    this.done = true;
    this.current = null;
    this.free.length = 0;
    await Promise.allSettled(this.inflight);
    await this.store.discard(this.token);
  }
}

/** S3's limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;
const MIB = 1024 * 1024;

interface S3StagingToken {
  key: string;
  /** Bytes per part (all but the last), fixed when the upload is created. */
  partSize: number;
  uploadId?: string;
}

/** The object holding the bytes of a part not yet full when a request ended (see `S3StagingWriter`). */
const tailKey = (key: string) => `${key}.tail`;

/**
 * One request's appender to a staged multipart upload. Bytes gather in one part buffer (the only
 * memory it holds); a full buffer goes out as the next part, at once. S3 parts (but the last) must
 * be at least 5 MiB, so when a request ends mid-part (`sync`), the partial part is stored as a small
 * "tail" object, prefixed with the part number it belongs to, and read back into the buffer by the
 * next `openStaging`. Only one tail exists per upload: a newer one either continues the same part
 * (the same bytes, more of them) or follows a part that was recorded first, so the tail in the
 * bucket always serves the recorded offset.
 */
class S3StagingWriter implements StagingWriter {
  private sent: string[] = [];
  private closed = false;
  private buffer: Buffer | null = null;
  private filled = 0;

  constructor(
    private readonly store: S3BlobStore,
    private readonly state: S3StagingToken,
    private nextPart: number,
    tail: Buffer | null,
  ) {
    if (tail && tail.length > 0) {
      this.buffer = Buffer.allocUnsafeSlow(state.partSize);
      this.filled = tail.copy(this.buffer);
    }
  }

  get unit(): number {
    return this.state.partSize;
  }

  get token(): string {
    return JSON.stringify(this.state);
  }

  private async sendPart(): Promise<void> {
    const body = this.buffer!.subarray(0, this.filled);
    const part = this.nextPart;
    const res = await s3Call(() =>
      this.store.client.uploadPart({ bucketName: this.store.bucket, objectName: this.state.key, uploadID: this.state.uploadId!, partNumber: part, headers: {} }, body),
    );
    this.nextPart++;
    this.filled = 0;
    this.sent.push(res.etag);
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.closed) throw new Error('write after close');
    let offset = 0;
    while (offset < chunk.length) {
      this.buffer ??= Buffer.allocUnsafeSlow(this.state.partSize);
      const n = chunk.copy(this.buffer, this.filled, offset);
      this.filled += n;
      offset += n;
      if (this.filled === this.buffer.length) await this.sendPart();
    }
  }

  /** Durable: full parts are already sent; a partial one becomes the last part (`final`) or the tail. */
  async sync(final = false): Promise<string[]> {
    if (this.filled > 0) {
      if (final) {
        await this.sendPart();
      } else {
        const header = Buffer.alloc(4);
        header.writeUInt32BE(this.nextPart);
        const body = Buffer.concat([header, this.buffer!.subarray(0, this.filled)]);
        await s3Call(() => this.store.client.putObject(this.store.bucket, tailKey(this.state.key), body, body.length));
      }
    }
    const out = this.sent;
    this.sent = [];
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sent = [];
    this.buffer = null;
  }
}

const parseStagingToken = (token: string): S3StagingToken => {
  const t = JSON.parse(token) as S3StagingToken;
  if (!KEY_PATTERN.test(t.key ?? '') || !Number.isSafeInteger(t.partSize) || t.partSize < 5 * MIB) throw notFound('No such staging area');
  return t;
};

/**
 * Blobs in an S3 bucket (MinIO or any S3 API) through the `minio` client, under `blobs/<2 hex>/<uuid>`.
 * Writes are driven here, not by `putObject` on a stream: small blobs are one PUT, larger ones a
 * multipart upload with bounded parts (about three parts of memory per upload), a fresh key per
 * write, and an abort on failure. S3 makes an object visible only when its upload completes.
 */
export class S3BlobStore implements BlobStore {
  readonly driver = 's3' as const;
  readonly client: Client;
  readonly bucket: string;
  readonly partSize: number;
  private readonly timeoutMs: number;

  /**
   * Opens the store. The `minio` client is loaded here, on demand, so processes using the fs driver
   * never pay for it in memory.
   */
  static async create(options: S3Options, onDiscardError?: (err: unknown, token: string) => void): Promise<S3BlobStore> {
    const { Client: MinioClient } = await import('minio');
    const url = new URL(options.endpoint);
    const useSSL = url.protocol === 'https:';
    const agent = useSSL ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
    const client = new MinioClient({
      endPoint: url.hostname,
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey: options.accessKey,
      secretKey: options.secretKey,
      region: options.region,
      pathStyle: true,
      transportAgent: agent,
    });
    return new S3BlobStore(client, agent, options, onDiscardError);
  }

  private constructor(
    client: Client,
    private readonly agent: HttpAgent,
    options: S3Options,
    private readonly onDiscardError?: (err: unknown, token: string) => void,
  ) {
    this.client = client;
    this.bucket = options.bucket;
    this.partSize = options.partSize;
    this.timeoutMs = options.timeoutMs ?? 2000;
  }

  async init(): Promise<void> {
    const exists = await s3Call(() => this.client.bucketExists(this.bucket), this.timeoutMs);
    if (!exists) {
      try {
        await s3Call(() => this.client.makeBucket(this.bucket), this.timeoutMs);
      } catch (err) {
        // Another service may have created it at the same moment.
        if ((err as { code?: string }).code !== 'BucketAlreadyOwnedByYou') throw err;
      }
    }
  }

  async ready(): Promise<void> {
    const exists = await s3Call(() => this.client.bucketExists(this.bucket), this.timeoutMs);
    if (!exists) throw unavailable(`The bucket does not exist`);
  }

  begin(options?: BeginOptions): BlobWriter {
    return new S3BlobWriter(this, options);
  }

  private check(key: string): string {
    if (!KEY_PATTERN.test(key)) throw notFound('No such blob');
    return key;
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    this.check(key);
    if (!range) return s3Call(() => this.client.getObject(this.bucket, key));
    return s3Call(() => this.client.getPartialObject(this.bucket, key, range.start, range.end - range.start + 1));
  }

  async stat(key: string): Promise<{ size: number } | null> {
    this.check(key);
    try {
      const st = await s3Call(() => this.client.statObject(this.bucket, key), this.timeoutMs);
      return { size: st.size };
    } catch (err) {
      if (err instanceof AppError && err.kind === 'not_found') return null;
      throw err;
    }
  }

  async remove(key: string): Promise<void> {
    this.check(key);
    await s3Call(() => this.client.removeObject(this.bucket, key), this.timeoutMs);
  }

  /**
   * Aborts the multipart upload (servers without AbortMultipartUpload, such as s3rver, refuse; the
   * refusal is reported to `onDiscardError` and the object is still removed) and deletes the object.
   */
  async discard(token: string): Promise<void> {
    const t = JSON.parse(token) as S3Token;
    if (!KEY_PATTERN.test(t.key)) return;
    if (t.uploadId) {
      try {
        await s3Call(() => this.client.abortMultipartUpload(this.bucket, t.key, t.uploadId!), this.timeoutMs);
      } catch (err) {
        if (err instanceof AppError && err.kind === 'unavailable' && NETWORK_CODES.has((err.cause as { code?: string })?.code ?? '')) throw err;
        this.onDiscardError?.(err, token);
      }
    }
    await this.remove(t.key);
  }

  /** A fresh key and a part size that fits `length` in S3's 10 000 parts (whole MiB, at least `partSize`). */
  newStaging(length: number): string {
    const id = randomUUID();
    const partSize = Math.max(this.partSize, Math.ceil(length / MAX_PARTS / MIB) * MIB);
    return JSON.stringify({ key: `blobs/${id.slice(0, 2)}/${id}`, partSize } satisfies S3StagingToken);
  }

  /**
   * Continues the multipart upload after its recorded parts (starting it on the first call). The
   * offset must be where those parts end: only whole parts are ever recorded, so bytes of a part cut
   * short by a dropped request were never recorded, and the part is simply sent again.
   */
  async openStaging(state: StagingState, offset: number): Promise<StagingWriter> {
    const t = parseStagingToken(state.token);
    const tailLength = offset - state.pieces.length * t.partSize;
    if (tailLength < 0 || tailLength >= t.partSize) throw notFound('The staged parts of this upload do not match its offset');
    if (!t.uploadId) {
      if (offset !== 0) throw notFound('The staged parts of this upload are gone');
      t.uploadId = await s3Call(() => this.client.initiateNewMultipartUpload(this.bucket, t.key, {}));
    }
    let tail: Buffer | null = null;
    if (tailLength > 0) {
      const stream = await s3Call(() => this.client.getObject(this.bucket, tailKey(t.key)));
      const chunks: Buffer[] = [];
      let size = 0;
      // Read no further than needed: at most one part.
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= tailLength + 4) break;
      }
      stream.destroy();
      const all = Buffer.concat(chunks);
      if (all.length < tailLength + 4 || all.readUInt32BE(0) !== state.pieces.length + 1) throw notFound('The staged bytes of this upload are gone');
      tail = all.subarray(4, 4 + tailLength);
    }
    return new S3StagingWriter(this, t, state.pieces.length + 1, tail);
  }

  sealTarget(state: StagingState): { key: string; token: string } {
    const { key } = parseStagingToken(state.token);
    return { key, token: JSON.stringify({ key } satisfies S3Token) };
  }

  /** Completes the multipart upload from the recorded parts (an empty upload is one empty PUT). */
  async sealStaging(state: StagingState, size: number): Promise<void> {
    const t = parseStagingToken(state.token);
    if (state.pieces.length === 0) {
      if (size !== 0) throw notFound('The staged parts of this upload are gone');
      await s3Call(() => this.client.putObject(this.bucket, t.key, Buffer.alloc(0), 0));
      return;
    }
    if (!t.uploadId) throw notFound('The staged parts of this upload are gone');
    const etags = state.pieces.map((etag, i) => ({ part: i + 1, etag }));
    await s3Call(() => this.client.completeMultipartUpload(this.bucket, t.key, t.uploadId!, etags));
    await s3Call(() => this.client.removeObject(this.bucket, tailKey(t.key)), this.timeoutMs).catch(() => undefined);
  }

  async discardStaging(state: StagingState): Promise<void> {
    const t = parseStagingToken(state.token);
    await s3Call(() => this.client.removeObject(this.bucket, tailKey(t.key)), this.timeoutMs);
    await this.discard(JSON.stringify({ key: t.key, uploadId: t.uploadId } satisfies S3Token));
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
