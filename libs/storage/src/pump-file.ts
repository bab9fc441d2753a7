import type { FileHandle } from 'node:fs/promises';

/** Chunk size for file responses: large enough to amortise per-write costs, small enough to stay cheap. */
export const SEND_CHUNK_BYTES = 1024 * 1024;

/** Where item bytes go: an HTTP response or a socket (FTP data connection). */
export interface ByteSink {
  readonly destroyed: boolean;
  write(chunk: Buffer, callback: (err?: Error | null) => void): boolean;
  once(event: 'close' | 'drain', listener: () => void): unknown;
  off(event: 'close' | 'drain', listener: () => void): unknown;
}

/**
 * Writes bytes `start..end` (inclusive) of an open file to a response or socket, through two buffers used in
 * turn: the next chunk is read while the previous one is being sent, and a buffer is reused only once
 * the response has flushed it. Memory per download is two chunks whatever the file size, and no
 * garbage is made per chunk (a stream of fresh buffers makes the collector work at these rates).
 * Resolves when every byte is handed to the socket; rejects when the client goes away.
 */
export async function pumpFile(res: ByteSink, file: FileHandle, start: number, end: number, chunkBytes = SEND_CHUNK_BYTES): Promise<void> {
  const size = Math.max(1, Math.min(chunkBytes, end - start + 1));
  const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
  // A write whose socket dies may never call back: stop waiting when the response closes.
  let onClose!: () => void;
  const closed = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error('client went away'));
    res.once('close', onClose);
  });
  closed.catch(() => undefined);
  try {
    await pumpRange(res, file, start, end, buffers, closed);
  } finally {
    // A response may take several ranges (multipart/byteranges): leave no listener behind.
    res.off('close', onClose);
  }
}

async function pumpRange(res: ByteSink, file: FileHandle, start: number, end: number, buffers: Buffer[], closed: Promise<never>): Promise<void> {
  const size = buffers[0]!.length;
  let previous: Promise<void> = Promise.resolve();
  let position = start;
  for (let i = 0; position <= end; i++) {
    if (res.destroyed) throw new Error('client went away');
    const buffer = buffers[i & 1]!;
    const { bytesRead } = await file.read(buffer, 0, Math.min(size, end - position + 1), position);
    if (bytesRead === 0) throw new Error('file ended early');
    position += bytesRead;
    await previous;
    const written = new Promise<void>((resolve, reject) => {
      res.write(buffer.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve()));
    });
    previous = Promise.race([written, closed]);
    previous.catch(() => undefined);
  }
  await previous;
}

/**
 * Resolves when `sink` takes more bytes after a `write` returned false; rejects when it closes first
 * (a vanished client would otherwise leave the writer waiting for ever).
 */
export function whenDrained(sink: Pick<ByteSink, 'destroyed' | 'once' | 'off'>): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sink.destroyed) return reject(new Error('client went away'));
    const onDrain = () => {
      sink.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      sink.off('drain', onDrain);
      reject(new Error('client went away'));
    };
    sink.once('drain', onDrain);
    sink.once('close', onClose);
  });
}
