import { createHash, type Hash } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createSHA256, type IHasher } from 'hash-wasm';
import { unavailable } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';

/**
 * A SHA-256 whose state can be saved after any byte and loaded elsewhere (another request, another
 * process): what lets a resumable upload's hash continue without reading its staged bytes again.
 */
export interface ResumableHash {
  /**
   * Adds bytes; may wait (back-pressure). The chunk may be reused by the caller once this resolves,
   * and is only read meanwhile (a blob writer may write it out at the same time).
   */
  update(chunk: Buffer): Promise<void>;
  /** The state after every byte given so far (hash-wasm's `save` format). */
  save(): Promise<Uint8Array>;
  /** The hex digest of every byte given so far; the hash is done after it. */
  digest(): Promise<string>;
  /** Drops the hash (idempotent). */
  close(): void;
}

/** Hashes on the caller's thread: the fallback, and for a pool of no threads. */
class InlineHash implements ResumableHash {
  constructor(private readonly hasher: IHasher) {}

  static async open(state: Uint8Array | null): Promise<InlineHash> {
    const hasher = await createSHA256();
    if (state) hasher.load(state);
    else hasher.init();
    return new InlineHash(hasher);
  }

  async update(chunk: Buffer): Promise<void> {
    this.hasher.update(chunk);
  }

  async save(): Promise<Uint8Array> {
    return this.hasher.save();
  }

  async digest(): Promise<string> {
    return this.hasher.digest('hex');
  }

  close(): void {}
}

/**
 * Node's own SHA-256 on the caller's thread: several times faster than hash-wasm's, but its state
 * cannot be saved. For uploads hashed whole in one go (see `openPlain`).
 */
class InlinePlainHash implements ResumableHash {
  private readonly hash: Hash = createHash('sha256');

  async update(chunk: Buffer): Promise<void> {
    this.hash.update(chunk);
  }

  async save(): Promise<Uint8Array> {
    throw new Error('a plain SHA-256 cannot be saved');
  }

  async digest(): Promise<string> {
    return this.hash.digest('hex');
  }

  close(): void {}
}

/**
 * The hash thread's code (CommonJS, evaluated): one hasher per session (hash-wasm's, whose state can
 * be saved), in message order.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createSHA256 } = require(workerData.hashWasm);
const hashers = new Map();
const handle = async (m) => {
  if (m.op === 'open') {
    const h = await createSHA256();
    if (m.state) h.load(m.state); else h.init();
    hashers.set(m.id, { h, slots: new Uint8Array(m.slots) });
  } else if (m.op === 'update') {
    const s = hashers.get(m.id);
    const at = m.slot * workerData.batchBytes;
    s.h.update(s.slots.subarray(at, at + m.length));
    parentPort.postMessage({ op: 'ack', id: m.id, slot: m.slot });
  } else if (m.op === 'shared') {
    // A batch of memory shared by the reader of an upload's body: hashed where it lies.
    const s = hashers.get(m.id);
    if (m.sab) s.sab = m.sab;
    s.h.update(new Uint8Array(s.sab, m.offset, m.length));
    parentPort.postMessage({ op: 'sharedAck', id: m.id });
  } else if (m.op === 'save') {
    parentPort.postMessage({ op: 'reply', seq: m.seq, value: hashers.get(m.id).h.save() });
  } else if (m.op === 'digest') {
    const value = hashers.get(m.id).h.digest('hex');
    hashers.delete(m.id);
    parentPort.postMessage({ op: 'reply', seq: m.seq, value });
  } else if (m.op === 'close') {
    hashers.delete(m.id);
  }
};
let chain = createSHA256().then(() => parentPort.postMessage({ op: 'ready' }));
parentPort.on('message', (m) => {
  chain = chain.then(() => handle(m)).catch((err) => parentPort.postMessage({ op: 'failed', id: m.id, seq: m.seq, message: String(err && err.message || err) }));
});
`;

/** Bytes gathered before one message to the thread: few messages, one copy per byte. */
const BATCH_BYTES = 512 * 1024;
/**
 * Batches of a session, in one SharedArrayBuffer: one filling while the others are on their way to
 * the thread; with none free, `update` waits.
 */
const SLOTS = 4;
/** A thread that has not loaded hash-wasm in this time is given up (the hashing stays inline). */
const STARTUP_MS = 10_000;

interface Reply {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** One hash thread and the sessions it serves. */
class HashThread {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  private readonly replies = new Map<number, Reply>();
  private readonly sessions = new Map<number, ThreadHash>();
  private seq = 0;
  private starting = true;
  dead: Error | null = null;

  constructor(hashWasm: string, private readonly onDeath: (thread: HashThread, err: Error) => void) {
    // A small heap: the thread holds a few hashers; the bytes come in batches of memory shared with it.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { hashWasm, batchBytes: BATCH_BYTES }, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the hash thread did not start')), STARTUP_MS);
      timer.unref();
      this.worker.once('message', () => {
        clearTimeout(timer);
        this.starting = false;
        this.refresh();
        resolve();
      });
      this.worker.once('exit', () => {
        clearTimeout(timer);
        reject(new Error('the hash thread did not start'));
      });
    });
    this.ready.catch(() => undefined);
    this.worker.on('message', (m: { op: string; id?: number; seq?: number; slot?: number; value?: unknown; message?: string }) => {
      if (m.op === 'ack') this.sessions.get(m.id!)?.acked(m.slot!);
      else if (m.op === 'sharedAck') this.sessions.get(m.id!)?.sharedAcked();
      else if (m.op === 'reply') this.take(m.seq!)?.resolve(m.value);
      else if (m.op === 'failed') {
        const err = new Error(`hashing failed: ${m.message}`);
        if (m.seq !== undefined) this.take(m.seq)?.reject(err);
        if (m.id !== undefined) this.sessions.get(m.id)?.fail(err);
      }
    });
    const die = (err: Error) => {
      if (this.dead) return;
      this.dead = err;
      for (const reply of this.replies.values()) reply.reject(err);
      this.replies.clear();
      for (const session of this.sessions.values()) session.fail(err);
      this.sessions.clear();
      onDeath(this, err);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`the hash thread exited (${code})`)));
    this.refresh();
  }

  /**
   * Keeps the process alive while the thread has work (starting, a session open, a reply awaited),
   * and only then: an idle hash thread never holds a process that is done. After the listeners,
   * since adding a 'message' listener refs the thread's port again.
   */
  private refresh(): void {
    if (this.dead) return;
    if (this.starting || this.sessions.size > 0 || this.replies.size > 0) this.worker.ref();
    else this.worker.unref();
  }

  private take(seq: number): Reply | undefined {
    const reply = this.replies.get(seq);
    this.replies.delete(seq);
    this.refresh();
    return reply;
  }

  get load(): number {
    return this.sessions.size;
  }

  attach(session: ThreadHash, id: number): void {
    this.sessions.set(id, session);
    this.refresh();
  }

  detach(id: number): void {
    this.sessions.delete(id);
    this.refresh();
  }

  post(message: Record<string, unknown>, transfer?: ArrayBuffer[]): void {
    if (this.dead) throw this.dead;
    this.worker.postMessage(message, transfer);
  }

  ask<T>(message: Record<string, unknown>): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.replies.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      this.refresh();
      this.worker.postMessage({ ...message, seq });
    });
  }
}

let sessionIds = 0;

/**
 * A hash computed on a hash thread: bytes are copied into 512 KiB batches of memory shared with the
 * thread (one SharedArrayBuffer per session, allocated once), and only the batch's number goes over
 * in a message, so the request's thread only copies. (Transferring buffers back and forth instead
 * made a new ArrayBuffer object on each side at every crossing.)
 */
class ThreadHash implements ResumableHash {
  private readonly id = ++sessionIds;
  private readonly slots: Buffer[];
  /** The batch filling, and the numbers of the batches free to fill (the thread has hashed them). */
  private slot = -1;
  private readonly free: number[] = [];
  private filled = 0;
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private closed = false;
  /** Shared chunks on their way to the thread, in order, and the last memory posted with one. */
  private readonly sharedWaiting: { resolve(): void; reject(err: Error): void }[] = [];
  private lastShared: SharedArrayBuffer | null = null;

  constructor(private readonly thread: HashThread, state: Uint8Array | null) {
    const shared = new SharedArrayBuffer(SLOTS * BATCH_BYTES);
    this.slots = Array.from({ length: SLOTS }, (_, i) => Buffer.from(shared, i * BATCH_BYTES, BATCH_BYTES));
    for (let i = SLOTS - 1; i >= 0; i--) this.free.push(i);
    thread.attach(this, this.id);
    thread.post({ op: 'open', id: this.id, state, slots: shared });
  }

  acked(slot: number): void {
    this.free.push(slot);
    this.wake();
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.wake();
    for (const w of this.sharedWaiting.splice(0)) w.reject(unavailable('Hashing failed; retry the upload', err));
  }

  sharedAcked(): void {
    this.sharedWaiting.shift()?.resolve();
  }

  /**
   * A chunk in shared memory (an upload body's batch, see @nondivy/runtime's socket-chunks.ts) is
   * hashed where it lies, not copied: resolves once the thread has hashed it.
   */
  private updateShared(chunk: Buffer): Promise<void> {
    this.send(); // bytes gathered before it go first
    const sab = chunk.buffer as SharedArrayBuffer;
    const message: Record<string, unknown> = { op: 'shared', id: this.id, offset: chunk.byteOffset, length: chunk.length };
    if (sab !== this.lastShared) {
      message.sab = sab;
      this.lastShared = sab;
    }
    return new Promise<void>((resolve, reject) => {
      this.sharedWaiting.push({ resolve, reject });
      try {
        this.thread.post(message);
      } catch (err) {
        this.sharedWaiting.pop();
        reject(unavailable('Hashing failed; retry the upload', err));
      }
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private check(): void {
    if (this.failure) throw unavailable('Hashing failed; retry the upload', this.failure);
    if (this.closed) throw new Error('hash used after close');
  }

  private send(): void {
    if (this.slot < 0 || this.filled === 0) return;
    this.thread.post({ op: 'update', id: this.id, slot: this.slot, length: this.filled });
    this.slot = -1;
    this.filled = 0;
  }

  async update(chunk: Buffer): Promise<void> {
    this.check();
    if (chunk.buffer instanceof SharedArrayBuffer) return this.updateShared(chunk);
    let offset = 0;
    while (offset < chunk.length) {
      if (this.slot < 0) {
        while (this.free.length === 0 && !this.failure) await new Promise<void>((resolve) => (this.waiter = resolve));
        this.check();
        this.slot = this.free.pop()!;
      }
      const n = chunk.copy(this.slots[this.slot]!, this.filled, offset);
      this.filled += n;
      offset += n;
      if (this.filled === BATCH_BYTES) this.send();
    }
  }

  async save(): Promise<Uint8Array> {
    this.check();
    this.send();
    try {
      return await this.thread.ask<Uint8Array>({ op: 'save', id: this.id });
    } catch (err) {
      throw unavailable('Hashing failed; retry the upload', err);
    }
  }

  async digest(): Promise<string> {
    this.check();
    this.send();
    try {
      return await this.thread.ask<string>({ op: 'digest', id: this.id });
    } catch (err) {
      throw unavailable('Hashing failed; retry the upload', err);
    } finally {
      this.closed = true;
      this.thread.detach(this.id);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.thread.detach(this.id);
    if (!this.thread.dead) this.thread.post({ op: 'close', id: this.id });
  }
}

/**
 * Resumable SHA-256 hashes for the uploads of one process, computed on up to `threads` hash threads
 * (started on first use, each serving any number of uploads, the least busy first) so that hashing,
 * the costliest step of an upload with a hash that can be saved, runs beside the request's thread
 * rather than on it. hash-wasm's SHA-256 costs about five times Node's own, which cannot be saved.
 * With 0 threads, or when a thread cannot start, hashing runs inline.
 */
export class ResumableHashes {
  private readonly threads: HashThread[] = [];
  private readonly max: number;
  private hashWasm: string | null | undefined;
  private warned = false;

  constructor(
    private readonly log: Logger,
    threads = Math.max(1, Math.min(2, availableParallelism() - 1)),
  ) {
    this.max = threads;
  }

  private resolveHashWasm(): string | null {
    if (this.hashWasm !== undefined) return this.hashWasm;
    try {
      this.hashWasm = createRequire(import.meta.url).resolve('hash-wasm');
    } catch {
      this.hashWasm = null;
    }
    return this.hashWasm;
  }

  private async thread(): Promise<HashThread | null> {
    const path = this.max > 0 ? this.resolveHashWasm() : null;
    if (!path) return null;
    let thread = this.threads.length < this.max ? null : [...this.threads].sort((a, b) => a.load - b.load)[0]!;
    if (!thread) {
      thread = new HashThread(path, (dead, err) => {
        const i = this.threads.indexOf(dead);
        if (i >= 0) this.threads.splice(i, 1);
        this.log.warn({ err: { message: err.message } }, 'a hash thread stopped; the next upload starts another');
      });
      this.threads.push(thread);
    }
    try {
      await thread.ready;
      return thread;
    } catch (err) {
      if (!this.warned) this.log.warn({ err: { message: (err as Error).message } }, 'hashing uploads on the request thread: no hash thread could start');
      this.warned = true;
      const i = this.threads.indexOf(thread);
      if (i >= 0) this.threads.splice(i, 1);
      void thread.worker.terminate();
      return null;
    }
  }

  /** A hash that continues from `state` (a saved state), or starts afresh. */
  async open(state: Uint8Array | null): Promise<ResumableHash> {
    const thread = await this.thread();
    if (!thread) return InlineHash.open(state);
    return new ThreadHash(thread, state);
  }

  /**
   * A plain SHA-256 (Node's own; `save` fails), for an upload hashed whole in one go: on the
   * caller's thread. Measured on a raw upload of 512 MiB (four runs each, same machine): inline
   * 1.9–2.3 server CPU-seconds per GiB and 292–345 MiB/s, on a hash thread 2.5–2.7 and 276–300 MiB/s,
   * and 12 MiB more resident: now that a body's bytes reach JavaScript without a copy, the crossing
   * to a thread costs more than it spares, and Node's SHA-256 (SHA extensions) is cheap.
   */
  async openPlain(): Promise<ResumableHash> {
    return new InlinePlainHash();
  }

  /** Stops the hash threads (at shutdown). */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }
}
