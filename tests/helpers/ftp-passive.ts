import { connect, type Socket } from 'node:net';
import type { RawFtp, Reply } from './ftp.js';

/** Sends PASV or EPSV; the data port when the server gave one, else the refusal. */
export async function passive(c: RawFtp, directive: 'PASV' | 'EPSV' = 'PASV'): Promise<{ reply: Reply | null; port: number | null }> {
  const reply = await c.send(directive);
  const m = directive === 'PASV' ? /\(\d+,\d+,\d+,\d+,(\d+),(\d+)\)/.exec(reply?.text ?? '') : /\(\|\|\|(\d+)\|\)/.exec(reply?.text ?? '');
  if (!m) return { reply, port: null };
  return { reply, port: directive === 'PASV' ? Number(m[1]) * 256 + Number(m[2]) : Number(m[1]) };
}

/**
 * True when nothing listens on `port` any more (the connection is refused). Probes come from an
 * address no test session uses, so a listener still open drops the probe instead of handing it a transfer.
 */
export function portClosed(port: number, localAddress = '127.0.0.250'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: '127.0.0.1', localAddress });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/**
 * Everything a data connection sends until it ends; fails when it stays silent for `idleMs` or
 * closes without an end, rather than waiting for ever.
 *
 * It may be called after the end came: a socket nobody reads yet keeps what arrives, but an end
 * with nothing before it (an empty listing, a zero-byte file) is emitted at once, listened to or
 * not, and then the socket closes. A client reads the control reply (150) first and the data
 * connection after, and on a busy machine the empty data connection's end is often handled first:
 * waiting for an `end` that already went by hung the test for ever.
 */
export function readAll(socket: Socket, idleMs = 20_000): Promise<Buffer> {
  // Ended already: nothing was read before (no one listened), so nothing was sent.
  if (socket.readableEnded) return Promise.resolve(Buffer.alloc(0));
  if (socket.destroyed) return Promise.reject(socket.errored ?? new Error('the data connection closed before it ended'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let timer: NodeJS.Timeout;
    const quiet = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`the data connection neither sent nor ended for ${idleMs} ms (${bytes} bytes so far)`));
      }, idleMs);
    };
    quiet();
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      bytes += d.length;
      quiet();
    });
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (!socket.readableEnded) reject(new Error('the data connection closed without an end'));
    });
  });
}
