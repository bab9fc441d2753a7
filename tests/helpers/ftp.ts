import { connect, type Socket } from 'node:net';
import { Client } from 'basic-ftp';

export interface Reply {
  code: number;
  text: string;
}

/**
 * A bare FTP control connection for the tests that must send what no polite client sends (split
 * lines, NUL bytes, foreign PORT addresses...). Replies are read whole, multi-line ones included.
 */
export class RawFtp {
  private buffer = '';
  private replies: Reply[] = [];
  private waiters: ((r: Reply | null) => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('utf8');
      this.parse();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
  }

  static open(port: number, localAddress = '127.0.0.1'): Promise<RawFtp> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', localAddress });
      socket.once('connect', () => resolve(new RawFtp(socket)));
      socket.once('error', reject);
    });
  }

  private parse() {
    for (;;) {
      const m = /^(\d{3})( |-)/.exec(this.buffer);
      if (!m) {
        const nl = this.buffer.indexOf('\r\n');
        if (nl === -1) return;
        this.buffer = this.buffer.slice(nl + 2); // not a reply start: skip the line
        continue;
      }
      let end: number;
      if (m[2] === ' ') {
        end = this.buffer.indexOf('\r\n');
        if (end === -1) return;
      } else {
        const last = new RegExp(`\\r\\n${m[1]} [^\\r]*\\r\\n`).exec(this.buffer);
        if (!last) return;
        end = last.index + last[0].length - 2;
      }
      const text = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const reply = { code: Number(m[1]), text };
      const w = this.waiters.shift();
      if (w) w(reply);
      else this.replies.push(reply);
    }
  }

  /** The next reply; null when the server closed the connection first. */
  next(timeoutMs = 10_000): Promise<Reply | null> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no FTP reply in time')), timeoutMs);
      this.waiters.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }

  write(data: string | Buffer) {
    this.socket.write(data);
  }

  async send(line: string, timeoutMs?: number): Promise<Reply | null> {
    this.write(`${line}\r\n`);
    return this.next(timeoutMs);
  }

  /** Reads the greeting and logs in. */
  async login(user = 'anonymous', pass = 'guest@'): Promise<Reply | null> {
    await this.next();
    await this.send(`USER ${user}`);
    return this.send(`PASS ${pass}`);
  }

  /** Sends EPSV and returns the data port. */
  async epsv(): Promise<number> {
    const r = await this.send('EPSV');
    const m = /\(\|\|\|(\d+)\|\)/.exec(r?.text ?? '');
    if (!m) throw new Error(`EPSV failed: ${r?.text}`);
    return Number(m[1]);
  }

  close() {
    this.socket.destroy();
  }
}

/** A connected basic-ftp client (passive mode; EPSV first, as basic-ftp does). */
export async function ftpClient(port: number, user = 'anonymous', password = 'guest@'): Promise<Client> {
  const client = new Client(15_000);
  await client.access({ host: '127.0.0.1', port, user, password });
  return client;
}

/** Opens a data connection to a passive port. */
export function dataSocket(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}
