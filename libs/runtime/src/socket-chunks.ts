import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';

/**
 * Upload bodies read straight off the socket into a few reused buffers.
 *
 * A Node socket read in the usual way hands every read (up to 64 KiB) to JavaScript as a new buffer:
 * at a gigabyte a second that is tens of thousands of allocations of memory outside the JavaScript
 * heap, which makes V8 run full collections every few tens of megabytes, and the stream machinery
 * around each one. On this path an upload cost its server three to four times the CPU the bytes
 * themselves need (measured here: a gigabyte of an HTTP request body costs 0.8–1.3 CPU-seconds read
 * that way, 0.3–0.5 read like this).
 *
 * Node's own `onread` option of `net.Socket` (a buffer each read lands in, chosen anew after every
 * read, and a callback per read) is what this uses. Node offers it only to sockets it connects, not
 * to those a server accepts or an HTTP request arrives on, so it is switched on here the way the
 * option does it (the socket's `kBuffer`, `kBufferCb` and `kBufferGen` slots, the handle's
 * `useUserBuffer`), after checking that each is there. Where one is missing (another Node, a TLS
 * socket, a body already being read), the caller gets null and reads the stream as before.
 *
 * The kernel copies each read straight into one of four batches of 512 KiB in memory shared with
 * the hash threads (see @nondivy/storage's hash.ts: a shared batch is hashed where it lies, and the
 * blob stores write it as it is), so no byte is copied by JavaScript on the way. The consumer gets
 * whole batches, or what has come so far when it is waiting: a chunk is lent, not given (see
 * `LentChunks`), and its batch is read into again once the consumer has asked for two more (one
 * chunk is written to the file while the next is hashed). Batches are filled in turn; reading
 * stops while the next one is still lent (back-pressure: `socket.isPaused()` says so) and goes on
 * once it is back. Memory per body: 2 MiB, whatever its size (one batch, 512 KiB, while a body
 * trickles in).
 */

/**
 * Chunks of a body, each valid until the consumer has asked for two more (or calls `return()`, or
 * the body ends): a consumer may write one chunk while it hashes the next, and is done with a chunk
 * before it asks for the second after it. Every consumer of upload bodies is (see hashAndWrite in
 * @nondivy/storage, and the blob writers' `write`).
 */
export type LentChunks = AsyncIterable<Buffer>;

const BATCH_BYTES = 512 * 1024;
const BATCHES = 4;
/** Chunks the consumer holds at once (see `LentChunks`). */
const LENT = 2;
/** A batch with less room than this left goes to the consumer rather than take a small read. */
const MIN_READ_BYTES = 64 * 1024;

/** The socket internals the `onread` option of `net.Socket` uses, found by their names. */
interface UserBufferSlots {
  buffer: symbol;
  callback: symbol;
  generate: symbol;
}

function userBufferSlots(socket: Socket): UserBufferSlots | null {
  const symbols = Object.getOwnPropertySymbols(socket);
  const find = (name: string) => symbols.find((s) => s.description === name);
  const buffer = find('kBuffer');
  const callback = find('kBufferCb');
  const generate = find('kBufferGen');
  if (!buffer || !callback || !generate) return null;
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } })._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') return null;
  // Set only by the `onread` option: a socket already reading this way is not ours to change.
  const slots = socket as unknown as Record<symbol, unknown>;
  if (slots[buffer] != null || slots[generate] != null) return null;
  return { buffer, callback, generate };
}

/** Whether this socket can be read into reused buffers (a plain TCP socket of this Node). */
function plainTcp(socket: Socket): boolean {
  return socket instanceof Socket && socket.constructor === Socket && !(socket as { encrypted?: boolean }).encrypted;
}

class ChunkReader implements AsyncIterator<Buffer> {
  /** Allocated when first read into: a body that trickles in holds one, not three. */
  private readonly batches: (Buffer | undefined)[] = new Array<Buffer | undefined>(BATCHES);
  /** Chunks of each batch with the consumer (queued or lent): a batch is read into only at 0. */
  private readonly out: number[] = new Array<number>(BATCHES).fill(0);
  private readonly ready: { index: number; chunk: Buffer }[] = [];
  /**
   * The batch reads land in, where the next read lands (`filled`), and where the bytes not yet
   * handed to the consumer start. The next read always lands at `filled` of this batch: between
   * reads nothing is written into a batch (libuv reads in the callback's turn), so a part of it can
   * be handed over at any time while reads go on after it.
   */
  private fill = 0;
  private filled = 0;
  private start = 0;
  /** The batches of the chunks the consumer holds, oldest first. */
  private readonly lent: number[] = [];
  /** Where reads land once this reader is done (see `finish`): never a batch a chunk may still be in. */
  private drain: Buffer | null = null;
  /** Bytes still expected (a request's Content-Length), or null: until the peer ends the connection. */
  private left: number | null;
  private ended = false;
  private failure: Error | null = null;
  private waiter: (() => void) | null = null;
  private stopped = false;
  /** While lingering (see `linger`): told of each read dropped. */
  private discarded: ((n: number) => void) | null = null;
  /** Whether this last resumed (true) or paused (false) the socket; null before the first. */
  private reading: boolean | null = null;

  constructor(
    private readonly socket: Socket,
    slots: UserBufferSlots,
    length: number | null,
    head: Buffer[],
    ended: boolean,
  ) {
    this.left = length;
    // Bytes read before this took over (at most a few tens of KiB): copied in once.
    for (let chunk of head) {
      chunk = this.clamp(chunk);
      let offset = 0;
      while (offset < chunk.length) {
        const n = chunk.copy(this.batch(this.fill), this.filled, offset);
        this.filled += n;
        offset += n;
        this.advance();
      }
    }
    if (ended) this.ended = true;
    const s = socket as unknown as Record<symbol, unknown>;
    // Once this reader is done with the socket, whoever reads it on (FTP drains the rest of a
    // refused upload) gets its bytes taken and dropped here: a socket cannot go back to Node's reads.
    s[slots.generate] = () => (this.stopped ? (this.drain ??= Buffer.allocUnsafeSlow(MIN_READ_BYTES)) : this.batch(this.fill).subarray(this.filled));
    s[slots.buffer] = this.batch(this.fill).subarray(this.filled);
    s[slots.callback] = (nread: number) => {
      if (this.stopped) {
        this.discarded?.(this.clamp(nread));
        return true;
      }
      this.filled += this.clamp(nread);
      if (this.waiter || this.done()) this.hand();
      this.advance();
      this.wake();
      return true;
    };
    (socket as unknown as { _handle: { useUserBuffer(b: Buffer): void } })._handle.useUserBuffer(s[slots.buffer] as Buffer);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    this.flow();
  }

  private batch(index: number): Buffer {
    return (this.batches[index] ??= Buffer.from(new SharedArrayBuffer(BATCH_BYTES)));
  }

  /** Of `n` bytes read, those of the body (a request's next one may follow its body). */
  private clamp(n: number): number;
  private clamp(chunk: Buffer): Buffer;
  private clamp(x: number | Buffer): number | Buffer {
    if (this.left === null) return x;
    const n = typeof x === 'number' ? x : x.length;
    const take = Math.min(n, this.left);
    this.left -= take;
    return typeof x === 'number' ? take : x.subarray(0, take);
  }

  /**
   * A batch with too little room left is handed over whole and reads go on in the next one, once
   * that one has come back from the consumer.
   */
  private advance() {
    if (BATCH_BYTES - this.filled >= MIN_READ_BYTES) return;
    this.hand();
    this.fill = (this.fill + 1) % BATCHES;
    this.filled = 0;
    this.start = 0;
  }

  /**
   * Reads go on while the body is not all in and the next read has room: in the batch being
   * filled, past what was handed over of it; a batch is entered (at 0) only once none of its
   * chunks from the round before is with the consumer.
   */
  private flow() {
    if (this.stopped || this.socket.destroyed) return;
    const go = !this.done() && (this.filled > 0 || this.out[this.fill] === 0);
    if (go === this.reading) return;
    this.reading = go;
    // Paused as a stream (not only stopped at the handle): the socket's owners see back-pressure.
    if (go) this.socket.resume();
    else this.socket.pause();
  }

  private readonly onEnd = () => {
    if (this.left !== null && this.left > 0) this.fail(new Error(`the connection ended ${this.left} bytes before the end of the body`));
    else this.ended = true;
    this.wake();
  };

  private readonly onClose = () => {
    if (!this.done()) this.fail(new Error('the connection closed before the end of the body'));
    this.wake();
  };

  private readonly onError = (err: Error) => {
    if (!this.done()) this.fail(err);
    this.wake();
  };

  private fail(err: Error) {
    this.failure ??= err;
  }

  /** Every byte of the body is in (or the peer ended it). */
  private done(): boolean {
    return this.ended || this.left === 0;
  }

  /** The bytes not yet handed over go to the consumer. */
  private hand() {
    if (this.filled === this.start) return;
    this.out[this.fill]! += 1;
    this.ready.push({ index: this.fill, chunk: this.batch(this.fill).subarray(this.start, this.filled) });
    this.start = this.filled;
  }

  private wake() {
    this.flow();
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Lent chunks come back (all, or all but the newest `keep`): reading goes on if it was waiting. */
  private giveBack(keep = 0) {
    while (this.lent.length > keep) this.out[this.lent.shift()!]! -= 1;
    this.flow();
  }

  async next(): Promise<IteratorResult<Buffer>> {
    this.giveBack(LENT - 1);
    for (;;) {
      // What has come so far, rather than wait for more: the consumer is idle.
      if (this.ready.length === 0) this.hand();
      const next = this.ready.shift();
      if (next) {
        this.lent.push(next.index);
        return { value: next.chunk, done: false };
      }
      if (this.failure) {
        this.finish();
        throw this.failure;
      }
      if (this.done()) {
        this.finish();
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  async return(): Promise<IteratorResult<Buffer>> {
    this.giveBack();
    this.finish();
    return { value: undefined, done: true };
  }

  /**
   * For a request whose reader stopped before the end of its body (a refused upload): the rest of
   * the body is read and dropped, and when Node closes the connection after the answer (it does: the
   * answer says `Connection: close`), it first ends its side and goes on dropping what comes until
   * the client ends too, the body is all in, or `ms` have passed (nginx's lingering close). Closing a
   * socket with bytes unread resets the connection, and a client still sending would lose the answer
   * it has not read yet. Nothing is kept meanwhile (reads land in one 64 KiB buffer).
   */
  linger(ms: number): void {
    if (this.left === null || this.done() || this.socket.destroyed) return;
    this.finish();
    // Reads land in the drain buffer from now on: the batches go (a chunk still being written keeps its own alive).
    this.batches.fill(undefined);
    const socket = this.socket as Socket & { destroySoon?: () => void };
    const destroySoon = socket.destroySoon;
    let closing = false;
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    const allIn = () => {
      this.discarded = null;
      clearTimeout(timer);
      if (closing) socket.destroy();
      else socket.pause();
    };
    this.discarded = () => {
      if (this.left === 0) allIn();
    };
    if (typeof destroySoon === 'function') {
      socket.destroySoon = () => {
        closing = true;
        if (this.discarded === null) return destroySoon.call(socket);
        // Our side ends (the answer is out); theirs may still be sending: read on until it ends.
        socket.end();
        socket.once('end', () => socket.destroy());
      };
    }
    socket.resume();
  }

  /** Stops reading this body; the socket stays open (its owner closes it). */
  private finish() {
    if (this.stopped) return;
    this.stopped = true;
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    if (!this.socket.destroyed) this.socket.pause();
  }
}

/**
 * The bytes a plain TCP socket sends until it ends (an FTP data connection), read into reused
 * buffers; null when this socket cannot be read that way (TLS, or a Node without the internals).
 * Bytes the socket already holds are read first. Not to be mixed with other readers of the socket.
 */
export function socketChunks(socket: Socket): LentChunks | null {
  if (!plainTcp(socket) || socket.destroyed || socket.readableFlowing === true || socket.listenerCount('data') > 0) return null;
  const slots = userBufferSlots(socket);
  if (!slots) return null;
  const head: Buffer[] = [];
  let total = 0;
  for (let chunk: Buffer | null; total < BATCH_BYTES * (BATCHES - 1) && (chunk = socket.read() as Buffer | null) !== null; ) {
    head.push(chunk);
    total += chunk.length;
  }
  if (socket.readableLength > 0) return null; // more held than the batches take: read it the usual way
  const reader = new ChunkReader(socket, slots, null, head, socket.readableEnded);
  return { [Symbol.asyncIterator]: () => reader };
}

/** The parts of Node's HTTP server state this takes over (see `requestBodyChunks`). */
interface ParsedSocket extends Socket {
  parser?: { unconsume?: () => void; incoming?: unknown; _consumed?: boolean } | null;
}

/**
 * The body of a request, to be read once: for an HTTP/1.1 request with a Content-Length, read off
 * its socket into reused buffers rather than through Node's HTTP parser (which copies each piece
 * into a new buffer); else (chunked, TLS, HTTP/2, a body already being read, another Node) the
 * request stream as it is. The choice is made when reading starts, so that a route that answers
 * without reading the body leaves the connection to Node as usual.
 *
 * A connection whose body was read this way is not reused: the parser no longer knows where the
 * body ends, so the response says `Connection: close`. The request is marked complete once every
 * byte is in, as Node would.
 */
export function requestBody(req: IncomingMessage, res: ServerResponse): LentChunks {
  return {
    [Symbol.asyncIterator]: () => {
      let inner: AsyncIterator<Buffer> | null = null;
      const open = async () => {
        // Out of the parser's turn first: a handler may run while Node's parser is still going
        // through the bytes of the read that brought the headers (it parses them all at once).
        await new Promise((resolve) => setImmediate(resolve));
        inner = takeBody(req, res) ?? (req[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
        return inner;
      };
      let opening: Promise<AsyncIterator<Buffer>> | null = null;
      const iterator: AsyncIterator<Buffer> & { inner(): AsyncIterator<Buffer> | null } = {
        inner: () => inner,
        next: async () => (inner ?? (await (opening ??= open()))).next(),
        return: async () => {
          const it = inner ?? (opening ? await opening : null);
          return (await it?.return?.()) ?? { value: undefined, done: true };
        },
      };
      return iterator;
    },
  };
}

/**
 * The body of a request read off its socket as `requestBody` does, or null (without touching the
 * body) where it cannot be (chunked, TLS, HTTP/2, a body already being read, another Node): for a
 * route that reads such bodies another way. Decided out of the parser's turn, as `requestBody` does.
 */
export async function directRequestBody(req: IncomingMessage, res: ServerResponse): Promise<LentChunks | null> {
  await new Promise((resolve) => setImmediate(resolve));
  const reader = takeBody(req, res);
  return reader ? { [Symbol.asyncIterator]: () => reader } : null;
}

function takeBody(req: IncomingMessage, res: ServerResponse): AsyncIterator<Buffer> | null {
  const socket = req.socket as ParsedSocket;
  const length = Number(req.headers['content-length']);
  if (req.headers['transfer-encoding'] !== undefined || !Number.isSafeInteger(length) || length <= 0) return null;
  if (req.httpVersionMajor !== 1 || req.complete || req.readableFlowing === true || req.listenerCount('data') > 0) return null;
  if (!plainTcp(socket) || socket.destroyed || res.headersSent) return null;
  const parser = socket.parser;
  // The request must be the one the parser is reading now (not one queued behind a response).
  if (!parser || typeof parser.unconsume !== 'function' || parser.incoming !== req) return null;
  const slots = userBufferSlots(socket);
  if (!slots) return null;
  // What the parser has read already sits in the request's buffer: it comes first.
  const head: Buffer[] = [];
  let total = 0;
  for (let chunk: Buffer | null; (chunk = req.read() as Buffer | null) !== null; ) {
    head.push(chunk);
    total += chunk.length;
  }
  // Node's buffers hold far less; were it more, the batches could not take it.
  if (total > BATCH_BYTES * (BATCHES - 1)) throw new Error('request body: more buffered than expected');
  res.setHeader('connection', 'close');
  if (parser._consumed !== false) parser.unconsume();
  parser._consumed = false;
  // The server's own reader of the socket (it feeds the parser): the body is ours now.
  socket.removeAllListeners('data');
  const reader = new ChunkReader(socket, slots, length, head, false);
  const next = reader.next.bind(reader);
  reader.next = async () => {
    const result = await next();
    if (result.done) req.complete = true;
    return result;
  };
  return reader;
}

/**
 * After a refused request whose body was read off its socket (`directRequestBody`): the rest of
 * the body is dropped and the connection closed gently once answered (see
 * `ChunkReader.linger`), for at most `ms`. Does nothing for a body read another way or read whole.
 */
export function lingerAfter(body: LentChunks, ms = LINGER_MS): void {
  readerOf(body[Symbol.asyncIterator]())?.linger(ms);
}

/** How long a refused upload's connection is read and dropped from at most (nginx's lingering_time). */
const LINGER_MS = 30_000;

/** Whether an iterator of `requestBody` or `socketChunks` reads off its socket (for tests and logs). */
export function readsDirect(iterator: AsyncIterator<Buffer>): boolean {
  return readerOf(iterator) !== null;
}

/** The socket reader behind an iterator of `requestBody`, `directRequestBody` or `socketChunks`, if it reads off its socket. */
function readerOf(iterator: AsyncIterator<Buffer>): ChunkReader | null {
  const inner = (iterator as { inner?: () => AsyncIterator<Buffer> | null }).inner?.() ?? iterator;
  return inner instanceof ChunkReader ? inner : null;
}
