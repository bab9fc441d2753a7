import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { AppError } from '@nondivy/errors';

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
 * here and are piped together, with back-pressure both ways. Nothing is written anywhere: memory per
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
  receive(key: string, res: ServerResponse, size: number): Promise<void> {
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
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size), 'cache-control': 'no-store' });
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
   * The sender's side: waits for the receiver, then pipes `req` into its response. Resolves when
   * the receiver has every byte; rejects (and cuts the receiver off, so it knows) on any failure.
   */
  async send(key: string, req: IncomingMessage, size: number, onBytes: (n: number) => void = () => undefined): Promise<void> {
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
    let sent = 0;
    // Bytes are counted on their way (no extra stream in between: the relay is CPU-bound); more than
    // offered stops the transfer.
    req.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      onBytes(sent);
      if (sent > size) req.destroy(new AppError('too_large', `More bytes than offered (${size})`));
    });
    try {
      receiver.start();
      await pipeline(req, receiver.res);
      if (sent !== size) throw new AppError('bad_input', `Fewer bytes than offered (${sent} of ${size})`);
      receiver.done.resolve();
    } catch (err) {
      receiver.res.destroy();
      const failure = err instanceof AppError ? err : new AppError('unavailable', req.destroyed && !req.complete ? 'The sender went away' : 'The receiver went away', { cause: err });
      receiver.done.reject(failure);
      throw failure;
    }
  }
}
