import type { Readable } from 'node:stream';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { Item } from '@nondivy/contracts';
import { AppError } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import type { BlobStore } from '@nondivy/storage';
import type { FromWorker, ToWorker, WireError } from './enrich-protocol.js';
import type { Extracted } from './extractors.js';

/** Default deadline of one item's extraction. */
export const DEFAULT_EXTRACT_TIMEOUT_MS = 10_000;
/**
 * Default heap of the worker thread. Extraction holds at most a 1 MiB OPF, a 256 KiB head and a
 * parser's state; a file that makes a parser want more is cut off here, not in the catalog's heap.
 */
export const DEFAULT_EXTRACT_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 96, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 };
/** A worker that has not loaded its code in this time is a system failure, not the file's. */
const STARTUP_MS = 30_000;

export interface ExtractionPoolOptions {
  blobs: BlobStore;
  log: Logger;
  timeoutMs?: number;
  resourceLimits?: ResourceLimits;
}

/**
 * Where the worker's code is. Bundled (dist/standalone.mjs, dist/catalog.mjs), this module sits in
 * dist/ beside dist/enrich-worker.mjs. Run from source under tsx (the tests), it is a .ts file, and
 * a worker thread does not inherit tsx's loader from `--import`: the worker first registers tsx itself.
 */
function spawnWorker(resourceLimits: ResourceLimits): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./enrich-worker.mjs', here), { resourceLimits });
  const entry = new URL('./enrich-worker.ts', here).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(code, { eval: true, resourceLimits });
}

interface Running {
  job: number;
  resolve(found: Extracted): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** One worker thread and what the main thread serves it: its blob streams and its current job. */
class Slot {
  readonly ready: Promise<void>;
  running: Running | null = null;
  dead = false;
  private readonly streams = new Map<number, Readable>();
  private readonly iterators = new Map<number, AsyncIterator<Buffer>>();

  constructor(
    readonly worker: Worker,
    private readonly blobs: BlobStore,
    private readonly onDeath: (slot: Slot, reason: string) => void,
  ) {
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new AppError('unavailable', 'the enrichment worker did not start')), STARTUP_MS);
      worker.once('message', (m: FromWorker) => {
        clearTimeout(timer);
        if (m.type === 'ready') resolve();
        else reject(new AppError('unavailable', 'the enrichment worker did not start'));
      });
      worker.once('exit', () => {
        clearTimeout(timer);
        reject(new AppError('unavailable', 'the enrichment worker did not start'));
      });
    });
    this.ready.catch(() => undefined);
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => this.onDeath(this, `the extraction failed: ${err.message.slice(0, 200)}`));
    worker.on('exit', (code) => this.onDeath(this, `the extraction stopped (exit code ${code})`));
    worker.unref();
  }

  private send(m: ToWorker, transfer?: ArrayBuffer[]) {
    if (!this.dead) this.worker.postMessage(m, transfer);
  }

  private onMessage(m: FromWorker) {
    switch (m.type) {
      case 'open':
        this.blobs.read(m.key, m.range).then(
          (stream) => {
            if (this.dead) return void stream.destroy();
            stream.on('error', () => undefined);
            this.streams.set(m.req, stream);
            this.iterators.set(m.req, stream[Symbol.asyncIterator]());
            this.send({ type: 'opened', req: m.req });
          },
          (err: unknown) => this.send({ type: 'opened', req: m.req, error: wire(err) }),
        );
        break;
      case 'pull': {
        const it = this.iterators.get(m.req);
        if (!it) return this.send({ type: 'chunk', req: m.req, error: { message: 'stream closed' } });
        it.next().then(
          (r) => {
            if (r.done) {
              this.drop(m.req);
              return this.send({ type: 'chunk', req: m.req });
            }
            // A copy the worker owns: the store's chunk may be a slice of a shared pool.
            const data = new Uint8Array(r.value);
            this.send({ type: 'chunk', req: m.req, data }, [data.buffer]);
          },
          (err: unknown) => {
            this.drop(m.req);
            this.send({ type: 'chunk', req: m.req, error: wire(err) });
          },
        );
        break;
      }
      case 'close':
        this.drop(m.req);
        break;
      case 'done':
      case 'failed':
        if (this.running?.job !== m.job) return;
        clearTimeout(this.running.timer);
        if (m.type === 'done') this.running.resolve(m.result);
        else this.running.reject(m.error.kind ? new AppError(m.error.kind, m.error.message) : new Error(m.error.message));
        this.running = null;
        break;
    }
  }

  private drop(req: number) {
    this.streams.get(req)?.destroy();
    this.streams.delete(req);
    this.iterators.delete(req);
  }

  /** Stops the thread and every blob stream it had open. */
  kill() {
    this.dead = true;
    for (const req of [...this.streams.keys()]) this.drop(req);
    void this.worker.terminate();
  }
}

function wire(err: unknown): WireError {
  const message = err instanceof Error ? err.message.slice(0, 500) : String(err).slice(0, 500);
  return err instanceof AppError ? { message, kind: err.kind } : { message };
}

/**
 * Runs `extract` in a worker thread, one item at a time, so that no file can hold the catalog's event
 * loop (in standalone mode also the gateway's and FTP's) or its heap: each extraction has a deadline
 * and the thread a heap limit. A thread that misses the deadline, runs out of memory or crashes is
 * terminated and replaced for the next item; that item's extraction fails as `bad_input` (the file's
 * fault: it keeps its item without meta). A blob store failure comes back with its own kind.
 */
export class ExtractionPool {
  private slot: Slot | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private nextJob = 1;
  private closed = false;
  readonly timeoutMs: number;
  private readonly limits: ResourceLimits;

  constructor(private readonly options: ExtractionPoolOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_EXTRACT_TIMEOUT_MS;
    this.limits = options.resourceLimits ?? DEFAULT_EXTRACT_LIMITS;
  }

  /** What `extract` finds in the blob `key` of `item`, computed in the worker thread. */
  run(key: string, item: Item): Promise<Extracted> {
    const next = this.queue.then(() => this.runNow(key, item));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runNow(key: string, item: Item): Promise<Extracted> {
    if (this.closed) throw new AppError('unavailable', 'enrichment is stopping');
    const slot = (this.slot ??= new Slot(spawnWorker(this.limits), this.options.blobs, (s, reason) => this.onDeath(s, reason)));
    try {
      await slot.ready;
    } catch (err) {
      slot.kill();
      if (this.slot === slot) this.slot = null;
      throw err;
    }
    return new Promise<Extracted>((resolve, reject) => {
      const job = this.nextJob++;
      const timer = setTimeout(() => {
        this.options.log.warn({ id: item.id, timeoutMs: this.timeoutMs }, 'extraction past its deadline: worker thread terminated');
        this.onDeath(slot, `the extraction took longer than ${this.timeoutMs} ms`);
      }, this.timeoutMs);
      slot.running = { job, resolve, reject, timer };
      slot.worker.postMessage({ type: 'job', job, key, item } satisfies ToWorker);
    });
  }

  /** The slot's thread is gone or must go: fail its job with `reason`, and start afresh next time. */
  private onDeath(slot: Slot, reason: string) {
    if (this.slot === slot) this.slot = null;
    const running = slot.running;
    slot.running = null;
    if (!slot.dead) slot.kill();
    if (running) {
      clearTimeout(running.timer);
      running.reject(this.closed ? new AppError('unavailable', 'enrichment is stopping') : new AppError('bad_input', reason));
    }
  }

  /** Terminates the thread; a job in progress fails as `unavailable` (it stays pending, for a retry). */
  async close(): Promise<void> {
    this.closed = true;
    const slot = this.slot;
    if (slot) {
      this.onDeath(slot, 'closing');
      await slot.worker.terminate();
    }
  }
}
