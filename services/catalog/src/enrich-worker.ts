/**
 * The enrichment worker thread's entry (bundled as dist/enrich-worker.mjs): runs `extract` on the
 * items the main thread sends, one at a time, reading their bytes from the main thread. Whatever a
 * file does to the parsers here — loop, backtrack, allocate — it does to this thread only, which the
 * main thread terminates at its deadline or when it outgrows its heap (enrich-pool.ts).
 */
import { Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { AppError } from '@nondivy/errors';
import type { ByteRange } from '@nondivy/storage';
import type { FromWorker, ToWorker, WireError } from './enrich-protocol.js';
import { extract, type BlobSource } from './extractors.js';

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const toError = (e: WireError) => (e.kind ? new AppError(e.kind, e.message) : new Error(e.message));
const toWire = (err: unknown): WireError => ({
  message: err instanceof Error ? err.message.slice(0, 500) : String(err).slice(0, 500),
  ...(err instanceof AppError ? { kind: err.kind } : {}),
});

let nextReq = 1;
const opening = new Map<number, { resolve(): void; reject(err: Error): void }>();
const streams = new Map<number, Readable>();

/** A blob's bytes pulled from the main thread: one chunk per `_read`, so nothing piles up. */
function remoteStream(req: number): Readable {
  const stream = new Readable({
    read() {
      post({ type: 'pull', req });
    },
    destroy(err, cb) {
      streams.delete(req);
      post({ type: 'close', req });
      cb(err);
    },
  });
  streams.set(req, stream);
  return stream;
}

const blobs: BlobSource = {
  read(key: string, range?: ByteRange) {
    const req = nextReq++;
    return new Promise<Readable>((resolve, reject) => {
      opening.set(req, { resolve: () => resolve(remoteStream(req)), reject });
      post({ type: 'open', req, key, ...(range ? { range } : {}) });
    });
  },
};

port.on('message', (m: ToWorker) => {
  if (m.type === 'opened') {
    const o = opening.get(m.req);
    opening.delete(m.req);
    if (m.error) o?.reject(toError(m.error));
    else o?.resolve();
  } else if (m.type === 'chunk') {
    const s = streams.get(m.req);
    if (!s) return;
    if (m.error) s.destroy(toError(m.error));
    else if (m.data) s.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
    else s.push(null);
  } else if (m.type === 'job') {
    extract(blobs, m.key, m.item).then(
      (result) => post({ type: 'done', job: m.job, result }),
      (err: unknown) => post({ type: 'failed', job: m.job, error: toWire(err) }),
    );
  }
});

post({ type: 'ready' });
