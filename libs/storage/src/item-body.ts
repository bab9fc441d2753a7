import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ByteRange } from './blob-store.js';
import { pumpFile, whenDrained, type ByteSink } from './pump-file.js';

/**
 * One range of an item's bytes, already open and ready to go out. Front doors only say where it
 * goes (an HTTP response, an FTP data socket); whether the bytes come from a local file sent
 * through reused buffers (fs driver) or from the store's stream (s3) is this object's business,
 * as SFTPGo's `BaseTransfer` hides "local file or pipe" from each protocol.
 *
 * A body holds an open file or stream: use it once, with `sendTo` or `stream`, or `close` it.
 */
export interface ItemBody {
  /** The bytes this body holds (inclusive); `end` is `start - 1` when it is empty. */
  readonly range: ByteRange;
  readonly length: number;
  /**
   * Writes every byte to `sink`, honouring its back-pressure, without ending it (a multipart answer
   * writes more after). Resolves once every byte is handed to the sink; rejects when the sink goes
   * away or the store fails. Releases the file or stream either way.
   */
  sendTo(sink: ByteSink): Promise<void>;
  /** The bytes as a stream, which then owns the file or stream (for callers that compose streams). */
  stream(): Readable;
  /** Releases the body without sending it. Idempotent. */
  close(): Promise<void>;
}

const lengthOf = (range: ByteRange) => range.end - range.start + 1;

/** A range of a local blob file, sent with `pumpFile` (two reused buffers per download). */
export class FileBody implements ItemBody {
  readonly length: number;
  private released = false;

  constructor(
    private readonly file: FileHandle,
    readonly range: ByteRange,
  ) {
    this.length = lengthOf(range);
  }

  private take(): FileHandle {
    if (this.released) throw new Error('item body already used');
    this.released = true;
    return this.file;
  }

  async sendTo(sink: ByteSink): Promise<void> {
    const file = this.take();
    try {
      await pumpFile(sink, file, this.range.start, this.range.end);
    } finally {
      await file.close().catch(() => undefined);
    }
  }

  stream(): Readable {
    // The stream owns the descriptor: the bytes stay readable even if the blob is deleted now.
    return this.take().createReadStream({ start: this.range.start, end: this.range.end, autoClose: true });
  }

  async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.file.close().catch(() => undefined);
  }
}

/** A range as the blob store streams it (s3, or any store without local files). */
export class StreamBody implements ItemBody {
  readonly length: number;
  private released = false;

  constructor(
    private readonly source: Readable,
    readonly range: ByteRange,
  ) {
    this.length = lengthOf(range);
  }

  private take(): Readable {
    if (this.released) throw new Error('item body already used');
    this.released = true;
    return this.source;
  }

  async sendTo(sink: ByteSink): Promise<void> {
    const source = this.take();
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (sink.destroyed) throw new Error('client went away');
        if (!sink.write(chunk, ignore)) await whenDrained(sink);
      }
    } finally {
      source.destroy();
    }
  }

  stream(): Readable {
    return this.take();
  }

  async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.source.destroy();
  }
}

/** No bytes (an empty item, or an FTP restart at its end): nothing is opened. */
export class EmptyBody implements ItemBody {
  readonly length = 0;
  constructor(readonly range: ByteRange) {}
  async sendTo(): Promise<void> {}
  stream(): Readable {
    return Readable.from([]);
  }
  async close(): Promise<void> {}
}

const ignore = () => undefined;
