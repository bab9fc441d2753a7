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

/** Everything a data connection sends until it ends. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}
