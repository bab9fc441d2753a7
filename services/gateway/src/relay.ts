import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppError } from '@nondivy/errors';
import { admitChunk, endedExactly } from './relay-count.js';

/** The receiving side of a relayed file: its response, waiting for the sender's bytes. */
interface Receiver {
  res: ServerResponse;
  /** Sends the response head; called once both sides are there. */
  start: () => void;
  /** Settles when the bytes have all been written to the receiver, or the relay failed. */
  done: { resolve(): void; reject(err: Error): void };
}

interface Slot {
  receiver?: Receiver;
  /** A sender that arrived first, waiting for its receiver. */
  senderWaiting?: (r: Receiver) => void;
  timer: NodeJS.Timeout;
}

/**
 * The device-to-device relay: a sender's PUT and its receiver's GET of the same transfer file meet
 * here and are copied together, with back-pressure both ways. Nothing is written anywhere: memory per
 * relayed file is the two sockets' buffers. Both must reach the same gateway process (one relay per
 * process); the side that comes first waits up to `waitMs` for the other.
 */
export class RelayHub {
  private readonly slots = new Map<string, Slot>();

  constructor(private readonly waitMs: number) {}

  get active(): number {
    return this.slots.size;
  }

  private slot(key: string, onTimeout: () => void): Slot {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { timer: setTimeout(onTimeout, this.waitMs) };
      slot.timer.unref();
      this.slots.set(key, slot);
    }
    return slot;
  }

  private release(key: string) {
    const slot = this.slots.get(key);
    if (slot) clearTimeout(slot.timer);
    this.slots.delete(key);
  }

  /**
   * The receiver's side: takes over `res` and resolves once the sender's bytes are all delivered;
   * rejects when the sender went away, sent too much or too little, or never came.
   */
  receive(key: string, res: ServerResponse, size: number, headers: Record<string, string> = {}): Promise<void> {
    if (this.slots.get(key)?.receiver) return Promise.reject(new AppError('conflict', 'This file is already being received'));
    return new Promise<void>((resolve, reject) => {
      const slot = this.slot(key, () => {
        this.release(key);
        reject(new AppError('unavailable', 'The sender did not start sending in time'));
      });
      const receiver: Receiver = { res, start: () => undefined, done: { resolve, reject } };
      res.once('close', () => {
        if (!res.writableFinished) {
          if (this.slots.get(key)?.receiver === receiver) this.release(key);
          reject(new AppError('unavailable', 'The receiver went away'));
        }
      });
      // The status line goes out when the sender is there: until then the receiver can still get
      // a proper error (sender never came).
      receiver.start = () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size), 'cache-control': 'no-store', ...headers });
        res.flushHeaders();
      };
      if (slot.senderWaiting) {
        const go = slot.senderWaiting;
        this.release(key);
        go(receiver);
      } else {
        slot.receiver = receiver;
      }
    });
  }

  /**
   * The sender's side: waits for the receiver, then copies `req` into its response. Resolves when
   * the receiver has every byte; rejects (and cuts the receiver's connection, so it knows) on any
   * failure: too many bytes (`too_large`), too few (`bad_input`), either side gone (`unavailable`).
   * With `sha256` (a file from a linked site, signed by its digest), the bytes are hashed on the way
   * and the file's last chunk is held back until the digest matches: a receiver never gets a whole
   * file whose bytes differ from the offer (`bad_input`).
   */
  async send(key: string, req: IncomingMessage, size: number, onBytes?: (sent: number) => void, sha256?: string): Promise<void> {
    const receiver = await new Promise<Receiver>((resolve, reject) => {
      const slot = this.slots.get(key);
      if (slot?.senderWaiting) return reject(new AppError('conflict', 'This file is already being sent'));
      if (slot?.receiver) {
        const r = slot.receiver;
        this.release(key);
        return resolve(r);
      }
      const s = this.slot(key, () => {
        this.release(key);
        reject(new AppError('unavailable', 'The receiver did not connect in time'));
      });
      s.senderWaiting = resolve;
      req.once('close', () => {
        if (this.slots.get(key) === s && s.senderWaiting === resolve) {
          this.release(key);
          reject(new AppError('unavailable', 'The sender went away'));
        }
      });
    });
    try {
      receiver.start();
      await copyExactly(req, receiver.res, size, onBytes, sha256);
      receiver.done.resolve();
    } catch (err) {
      // Destroyed, never ended: the receiver's response announced `size` bytes, so an ended
      // response with fewer would leave its keep-alive connection waiting for the rest.
      receiver.res.destroy();
      const failure = err instanceof AppError ? err : new AppError('unavailable', 'The relay failed', { cause: err });
      receiver.done.reject(failure);
      throw failure;
    }
  }
}

/**
 * Copies the sender's body into the receiver's response, which announced exactly `size` bytes, with
 * back-pressure. The sender's length is never trusted (a chunked body has none): the bytes are
 * counted, nothing beyond `size` is ever written (it would land on the receiver's keep-alive
 * connection after the announced body, read as a response of the sender's choosing), and the
 * response is ended only when the sender's body ended at exactly `size`. On failure the sender's
 * body is left unread (the route answers it and closes its connection); the caller cuts the receiver.
 * With `sha256`, the chunk that completes the file is written only once the digest of every byte
 * matches it (the response announced `size`: a client that has them all has the file).
 */
function copyExactly(req: IncomingMessage, res: ServerResponse, size: number, onBytes?: (sent: number) => void, sha256?: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let sent = 0;
    const hash = sha256 === undefined ? null : createHash('sha256');
    let held: Buffer | null = null;
    let settled = false;
    const settle = (err?: AppError) => {
      if (settled) return;
      settled = true;
      req.off('data', onData).off('end', onEnd).off('close', onSenderClose).off('error', onSenderClose);
      res.off('drain', onDrain).off('finish', onFinish).off('close', onReceiverClose);
      if (!err) return resolve();
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      const { write, over } = admitChunk(sent, chunk.length, size);
      if (over) {
        if (write > 0) res.write(chunk.subarray(0, write));
        sent = size;
        return settle(new AppError('too_large', `More bytes than offered (${size})`));
      }
      sent += write;
      onBytes?.(sent);
      if (hash) {
        if (write > 0) hash.update(chunk);
        if (sent === size) {
          // An empty chunk after the last byte must not replace the held one.
          if (write > 0) held = chunk;
          return;
        }
      }
      if (!res.write(chunk)) req.pause();
    };
    const onDrain = () => req.resume();
    const onEnd = () => {
      if (!endedExactly(sent, size)) return settle(new AppError('bad_input', `Fewer bytes than offered (${sent} of ${size})`));
      if (hash && hash.digest('hex') !== sha256) return settle(new AppError('bad_input', 'The bytes sent do not match the SHA-256 offered'));
      req.off('close', onSenderClose).off('error', onSenderClose);
      if (held) res.end(held);
      else res.end();
    };
    const onFinish = () => settle();
    const onSenderClose = () => {
      if (!req.complete) settle(new AppError('unavailable', 'The sender went away'));
    };
    const onReceiverClose = () => {
      if (!res.writableFinished) settle(new AppError('unavailable', 'The receiver went away'));
    };
    req.on('data', onData).once('end', onEnd).once('close', onSenderClose).once('error', onSenderClose);
    res.on('drain', onDrain).once('finish', onFinish).once('close', onReceiverClose);
    if (req.readableEnded) onEnd();
    else req.resume();
  });
}
