import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { readAll } from './ftp-passive.js';
import { bearer, login } from './http.js';
import { startRedis, startS3, tempDir, type TestS3 } from './infra.js';
import { startServer, type TestServer } from './server.js';

/** The admin's password on the sites `ftpSite` starts; alice and bob are members (`<name>-password`). */
export const ADMIN = 'admin-password';

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

/** A listing (LIST, NLST or MLSD) of `path` over a raw session, after its 150 and before its 226. */
export async function listing(c: RawFtp, directive: 'LIST' | 'NLST' | 'MLSD', path: string): Promise<string> {
  const port = await c.epsv();
  const data = await dataSocket(port);
  const opened = await c.send(`${directive} ${path}`);
  if (opened?.code !== 150) {
    data.destroy();
    assert.fail(`${directive} ${path}: ${opened?.text}`);
  }
  const text = (await readAll(data)).toString();
  assert.equal((await c.next())?.code, 226);
  return text;
}

/** An item as REST gives it (the fields the FTP tests look at). */
export interface Item {
  id: string;
  title: string;
  kind: string;
  filename: string;
  size: number;
  sha256: string;
  uploadedBy: string;
  folder: string;
  path: string;
  tags: string[];
}

/** The files under `dir`, recursively (none when it is not there). */
export function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
}

/** curl as an FTP client; returns its exit status, output and verbose trace. */
export function curlFtp(args: string[], input?: Buffer): { status: number; out: Buffer; trace: string } {
  const res = spawnSync('curl', ['-sS', '-v', '--max-time', '60', ...args], { input, maxBuffer: 1 << 28 });
  return { status: res.status ?? -1, out: res.stdout, trace: res.stderr.toString() };
}

/** Waits until `probe` holds (polling), or fails after `ms`; how long it took. */
export async function within(ms: number, probe: () => Promise<boolean> | boolean): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await Promise.resolve(probe()).catch(() => false)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`condition not met within ${ms} ms`);
}

/** Collects a basic-ftp download into memory. */
export async function download(client: Awaited<ReturnType<typeof ftpClient>>, path: string, startAt = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await client.downloadTo(sink, path, startAt);
  return Buffer.concat(chunks);
}

/** A stack of one site: Redis, the server (fs or s3 driver), an admin token and two members, alice and bob. */
export async function ftpSite(env: Record<string, string> = {}, driver: 'fs' | 's3' = 'fs') {
  const redis = await startRedis();
  const s3 = driver === 's3' ? await startS3() : null;
  const data = tempDir();
  let server: TestServer;
  try {
    server = await startServer({
      REDIS_URL: redis.url,
      NONDIVY_DATA_DIR: data.path,
      NONDIVY_ADMIN_PASSWORD: ADMIN,
      ...(s3 ? { NONDIVY_BLOB_DRIVER: 's3', S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: s3.bucket } : {}),
      ...env,
    });
  } catch (err) {
    // Nothing of a site that did not start may outlive the test (it would keep the run alive).
    await redis.close();
    await s3?.close();
    data.cleanup();
    throw err;
  }
  const admin = await login(server.api, 'admin', ADMIN);
  for (const name of ['alice', 'bob']) {
    const res = await fetch(`${server.api}/users`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ username: name, password: `${name}-password`, role: 'member' }),
    });
    assert.equal(res.status, 201);
  }
  const items = async (q = ''): Promise<Item[]> => {
    const res = await fetch(`${server.api}/library?limit=200${q ? `&q=${encodeURIComponent(q)}` : ''}`);
    assert.equal(res.status, 200);
    return ((await res.json()) as { items: Item[] }).items;
  };
  const restBytes = async (id: string) => {
    const res = await fetch(`${server.api}/library/${id}/content`);
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  };
  const leftovers = () => ({
    leases: Number(redis.cli('zcard', 'nd:uploads')),
    tmp: files(join(data.path, 'blobs', 'tmp')),
  });
  return {
    redis,
    s3: s3 as TestS3 | null,
    data,
    server,
    admin,
    items,
    restBytes,
    leftovers,
    close: async () => {
      await server.stop();
      await redis.close();
      await s3?.close();
      data.cleanup();
    },
  };
}
export type FtpSite = Awaited<ReturnType<typeof ftpSite>>;
