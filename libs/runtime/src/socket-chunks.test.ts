import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { directRequestBody, lingerAfter, readsDirect, requestBody, socketChunks } from './socket-chunks.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

interface Received {
  direct: boolean;
  bytes: Buffer;
  error: string | null;
  pausedSeen: boolean;
}

/**
 * An HTTP server whose handler reads each body with `requestBody`, slowly when asked (the
 * `x-slow` header: milliseconds per chunk), keeps a copy of what came and answers its SHA-256.
 */
async function bodyServer(): Promise<{ url: string; port: number; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = createHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/refuse') {
      res.writeHead(409).end('refused before reading');
      return;
    }
    const slow = Number(req.headers['x-slow'] ?? 0);
    const iterator = requestBody(req, res)[Symbol.asyncIterator]();
    const r: Received = { direct: false, bytes: Buffer.alloc(0), error: null, pausedSeen: false };
    received.push(r);
    const parts: Buffer[] = [];
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        // Lent: copied before the next one is asked for.
        parts.push(Buffer.from(next.value));
        if (slow > 0) {
          await new Promise((resolve) => setTimeout(resolve, slow));
          r.pausedSeen ||= req.socket.isPaused();
        }
      }
    } catch (err) {
      r.error = (err as Error).message;
    }
    r.direct = readsDirect(iterator);
    r.bytes = Buffer.concat(parts);
    if (!res.destroyed) res.end(sha256(r.bytes));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends `bytes` on a raw connection and returns everything the server answers until it closes. */
function rawExchange(port: number, bytes: Buffer[], options: { endAfter?: boolean; destroyAfterMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const answer: Buffer[] = [];
    socket.on('data', (d) => answer.push(d));
    socket.on('error', () => resolve(Buffer.concat(answer).toString('latin1')));
    socket.on('close', () => resolve(Buffer.concat(answer).toString('latin1')));
    socket.on('connect', () => {
      for (const b of bytes) socket.write(b);
      if (options.endAfter) socket.end();
      if (options.destroyAfterMs !== undefined) setTimeout(() => socket.destroy(), options.destroyAfterMs);
    });
    socket.setTimeout(20_000, () => reject(new Error('no answer')));
  });
}

describe('requestBody: an HTTP body read off its socket', () => {
  let site: Awaited<ReturnType<typeof bodyServer>>;
  let dir: string;
  before(async () => {
    site = await bodyServer();
    dir = await mkdtemp(join(tmpdir(), 'nondivy-socket-chunks-'));
  });
  after(async () => {
    await site.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a 24 MiB curl upload (Expect: 100-continue) byte-exact, and closes the connection after', async () => {
    const data = randomBytes(24 * MiB + 12345);
    const file = join(dir, 'big.bin');
    await writeFile(file, data);
    const { stdout, stderr } = await run('curl', ['-sS', '-v', '-X', 'POST', '-T', file, '-H', 'content-type: application/octet-stream', `${site.url}/up`]);
    assert.equal(stdout, sha256(data));
    assert.match(stderr, /^< connection: close/im);
    const r = site.received.at(-1)!;
    assert.equal(r.direct, true, 'the body was read off the socket');
    assert.equal(r.error, null);
    assert.equal(r.bytes.length, data.length);
  });

  it('a slow reader pauses the socket (back-pressure) and still gets every byte', async () => {
    const data = randomBytes(8 * MiB);
    const file = join(dir, 'slow.bin');
    await writeFile(file, data);
    const { stdout } = await run('curl', ['-sS', '-X', 'POST', '-T', file, '-H', 'x-slow: 3', `${site.url}/slow`]);
    assert.equal(stdout, sha256(data));
    const r = site.received.at(-1)!;
    assert.equal(r.direct, true);
    assert.equal(r.pausedSeen, true, 'the socket was paused while the reader was busy');
  });

  it('a body that trickles in (64 KiB every few ms) is handed over as it comes, byte-exact', async () => {
    const body = randomBytes(2 * MiB);
    const head = Buffer.from(`POST /trickle HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n`);
    const pieces = [head];
    for (let at = 0; at < body.length; at += 64 * 1024) pieces.push(body.subarray(at, at + 64 * 1024));
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(site.port, '127.0.0.1');
      const got: Buffer[] = [];
      socket.on('data', (d) => got.push(d));
      socket.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
      socket.on('error', reject);
      socket.setTimeout(20_000, () => reject(new Error('no answer')));
      socket.on('connect', async () => {
        for (const p of pieces) {
          socket.write(p);
          await new Promise((r) => setTimeout(r, 3));
        }
      });
    });
    assert.ok(answer.includes(sha256(body)), answer.slice(0, 300));
    assert.equal(site.received.at(-1)!.direct, true);
  });

  it('takes exactly Content-Length bytes when more follow on the connection (a pipelined request)', async () => {
    const body = randomBytes(300_000);
    const head = Buffer.from(`POST /pipelined HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n`);
    const next = Buffer.from('GET /second HTTP/1.1\r\nhost: x\r\n\r\n');
    const answer = await rawExchange(site.port, [head, body, next]);
    assert.match(answer, /^HTTP\/1\.1 200 OK/);
    assert.match(answer, /connection: close/i);
    assert.ok(answer.includes(sha256(body)), answer.slice(0, 300));
    const r = site.received.at(-1)!;
    assert.equal(r.direct, true);
    assert.equal(r.bytes.length, body.length);
  });

  it('a client that goes away mid-body: what came is given, then the body fails', async () => {
    const first = randomBytes(700_000);
    const head = Buffer.from(`POST /cut HTTP/1.1\r\nhost: x\r\ncontent-length: ${4 * MiB}\r\n\r\n`);
    const before = site.received.length;
    await rawExchange(site.port, [head, first], { destroyAfterMs: 300 });
    for (let i = 0; i < 50 && (site.received.length === before || site.received.at(-1)!.error === null); i++) await new Promise((r) => setTimeout(r, 20));
    const r = site.received.at(-1)!;
    assert.equal(r.direct, true);
    assert.match(r.error ?? '', /closed before the end of the body|ended .* before the end/);
    assert.equal(r.bytes.length, first.length, 'every byte that came was handed over before the failure');
    assert.ok(r.bytes.equals(first));
  });

  it('a chunked body is read as a stream (not directly), byte-exact', async () => {
    const body = randomBytes(100_000);
    const chunked = Buffer.concat([Buffer.from(`POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
    const answer = await rawExchange(site.port, [chunked], { endAfter: true });
    assert.ok(answer.includes(sha256(body)), answer.slice(0, 300));
    assert.equal(site.received.at(-1)!.direct, false);
  });

  it('a route that answers without reading leaves the connection to Node (kept alive)', async () => {
    const res = await fetch(`${site.url}/refuse`, { method: 'POST', body: randomBytes(1000) });
    assert.equal(res.status, 409);
    assert.notEqual(res.headers.get('connection'), 'close');
    await res.text();
  });
});

describe('socketChunks: a TCP stream read off its socket', () => {
  let server: Server;
  let port: number;
  const results: { direct: boolean; digest: string; size: number }[] = [];
  before(async () => {
    server = createNetServer(async (socket: Socket) => {
      socket.on('error', () => undefined);
      // As an FTP data connection: the peer may have sent bytes before the reader starts.
      await new Promise((r) => setTimeout(r, 50));
      const chunks = socketChunks(socket);
      const iterator = (chunks ?? socket)[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const hash = createHash('sha256');
      let size = 0;
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        hash.update(next.value);
        size += next.value.length;
      }
      results.push({ direct: chunks !== null && readsDirect(iterator), digest: hash.digest('hex'), size });
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reads everything a peer sends until it ends, byte-exact, bytes sent before it started included', async () => {
    const data = randomBytes(10 * MiB + 7);
    await rawExchange(port, [data], { endAfter: true });
    for (let i = 0; i < 100 && results.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(results.at(-1), { direct: true, digest: sha256(data), size: data.length });
  });

  it('an empty stream ends at once (a socket already closed is read the usual way)', async () => {
    await rawExchange(port, [], { endAfter: true });
    for (let i = 0; i < 100 && results.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    const { direct: _direct, ...got } = results.at(-1)!;
    assert.deepEqual(got, { digest: sha256(Buffer.alloc(0)), size: 0 });
  });
});

describe('lingerAfter: a body refused before its end', () => {
  let server: Server;
  let port: number;
  before(async () => {
    // Reads the first chunk, refuses the rest (as a refused upload name does) and lingers for 400 ms.
    server = createHttpServer(async (req, res) => {
      const body = await directRequestBody(req, res);
      if (!body) return void res.writeHead(500).end('not read off the socket');
      const iterator = body[Symbol.asyncIterator]();
      await iterator.next();
      await iterator.return?.();
      lingerAfter(body, 400);
      res.writeHead(400).end('refused');
    }) as unknown as Server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /**
   * Sends headers announcing `length` bytes, then `send(socket)` (a client that keeps sending after
   * the server's end: half-open allowed); resolves with the answer, how long after the request the
   * server closed its socket, and whether the client saw a reset.
   */
  function refused(length: number, send: (socket: Socket) => void): Promise<{ answer: string; closedAfterMs: number; reset: boolean }> {
    return new Promise((resolve) => {
      const started = Date.now();
      server.once('connection', (serverSide: Socket) =>
        serverSide.once('close', () => {
          // The client had until now to see a reset.
          setTimeout(() => {
            socket.destroy();
            resolve({ answer, closedAfterMs: Date.now() - started, reset });
          }, 100);
        }),
      );
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      let answer = '';
      let reset = false;
      socket.on('data', (d) => (answer += d.toString('latin1')));
      socket.on('error', () => (reset = true));
      socket.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n\r\n`);
      send(socket);
    });
  }

  it('reads and drops the rest of a body sent whole, then closes: the client reads its answer, no reset', async () => {
    const rest = randomBytes(4 * MiB);
    const r = await refused(64 * 1024 + rest.length, (s) => {
      s.write(randomBytes(64 * 1024));
      setTimeout(() => s.write(rest), 50);
    });
    assert.match(r.answer, /^HTTP\/1\.1 400/);
    assert.match(r.answer, /refused/);
    assert.equal(r.reset, false, 'closed without a reset');
    assert.ok(r.closedAfterMs < 3000, `closed once the body was in (${r.closedAfterMs} ms)`);
  });

  it('a client that trickles on is cut once the linger time has passed', async () => {
    let timer: NodeJS.Timeout | undefined;
    const r = await refused(100 * MiB, (s) => {
      s.write(randomBytes(1024));
      timer = setInterval(() => s.writable && s.write(randomBytes(512)), 50);
      // The client would go on for 10 s: the server must not wait for it.
      setTimeout(() => s.destroy(), 10_000).unref();
      s.on('close', () => clearInterval(timer));
    });
    clearInterval(timer);
    assert.match(r.answer, /^HTTP\/1\.1 400/);
    assert.ok(r.closedAfterMs >= 400 && r.closedAfterMs < 3000, `cut after the linger time (${r.closedAfterMs} ms)`);
  });
});
