/**
 * Slow clients against the standalone server, with raw sockets: headers and small bodies on a short
 * deadline, uploads held to a rate (never to a total time), and a cap on connections per client
 * address (Linux routes all of 127/8 on lo, so 127.0.0.2 and 127.0.0.3 are other clients).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bearer, login } from './helpers/http.js';
import { startServerWithRedis, type ServerWithRedis, type TestServer } from './helpers/server.js';

const KiB = 1024;
const BODY_TIMEOUT_S = 2;
const PROGRESS_WINDOW_S = 2;
const PROGRESS_MIN_BYTES = 8 * KiB;
const MAX_PER_IP = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw client connection that records what it was answered and when it was closed. */
interface RawClient {
  socket: Socket;
  answer(): string;
  /** Resolves with the ms from connect to close, or null if still open after `ms`. */
  closedWithin(ms: number): Promise<number | null>;
  closed: boolean;
}

function rawClient(port: number, localAddress = '127.0.0.1'): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    let answer = '';
    let closedAt = 0;
    const t0 = Date.now();
    const closed = new Promise<void>((r) => socket.once('close', () => ((closedAt = Date.now()), r())));
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined); // a cut connection may be reset
    socket.once('connect', () =>
      resolve({
        socket,
        answer: () => answer,
        get closed() {
          return closedAt > 0;
        },
        closedWithin: async (ms) => {
          await Promise.race([closed, sleep(ms)]);
          return closedAt ? closedAt - t0 : null;
        },
      }),
    );
    socket.once('error', reject);
  });
}

/** Writes `bytes` one at a time every `everyMs` until the socket closes. */
function trickle(c: RawClient, bytes: string, everyMs: number): NodeJS.Timeout {
  let i = 0;
  const timer = setInterval(() => {
    if (c.closed || i >= bytes.length) return clearInterval(timer);
    c.socket.write(bytes[i++]!);
  }, everyMs);
  return timer;
}

describe('slow clients', () => {
  let stack: ServerWithRedis;
  let server: TestServer;
  let token: string;
  const stagingFiles = () => {
    const dir = join(stack.data.path, 'blobs', 'tmp');
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  const uploadHead = (length: number) =>
    `POST /api/v1/library HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: ${length}\r\n\r\n`;
  const part = '--b\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\nContent-Type: application/octet-stream\r\n\r\n';
  const end = '\r\n--b--\r\n';

  before(async () => {
    stack = await startServerWithRedis({
      NONDIVY_HTTP_BODY_TIMEOUT_SECONDS: String(BODY_TIMEOUT_S),
      NONDIVY_HTTP_PROGRESS_TIMEOUT_SECONDS: String(PROGRESS_WINDOW_S),
      NONDIVY_HTTP_PROGRESS_MIN_BYTES: String(PROGRESS_MIN_BYTES),
      NONDIVY_HTTP_MAX_CONNECTIONS_PER_IP: String(MAX_PER_IP),
    });
    server = stack.server;
    token = await login(server.api, 'admin', 'admin-password');
  });

  after(() => stack?.close());

  it('answers 408 and closes a login whose body trickles in, within the body deadline', async () => {
    const c = await rawClient(server.port);
    const body = '{"username":"admin","password":"admin-password"}';
    c.socket.write(`POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    const timer = trickle(c, body, 1000);
    const ms = await c.closedWithin(BODY_TIMEOUT_S * 1000 + 2500);
    clearInterval(timer);
    c.socket.destroy();
    assert.ok(ms !== null, 'the trickling login is still open');
    assert.ok(ms >= BODY_TIMEOUT_S * 1000 - 200, `cut after ${ms} ms, before the deadline`);
    assert.match(c.answer(), /^HTTP\/1\.1 408 /);
    assert.match(c.answer(), /content-type: application\/problem\+json/i);
  });

  it('closes a connection whose headers trickle in, within the same deadline', async () => {
    const c = await rawClient(server.port);
    const timer = trickle(c, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(100), 500);
    const ms = await c.closedWithin(BODY_TIMEOUT_S * 1000 + 2500);
    clearInterval(timer);
    c.socket.destroy();
    assert.ok(ms !== null, 'the trickling headers are still open');
  });

  it('cuts an upload that trickles below the progress floor, and keeps nothing of it', async () => {
    const c = await rawClient(server.port);
    c.socket.write(uploadHead(10 * 1024 * KiB));
    c.socket.write(part + 'x'.repeat(100));
    await sleep(200);
    const timer = trickle(c, 'y'.repeat(1000), 500); // 2 bytes/s: far below 8 KiB per 2 s
    const ms = await c.closedWithin(PROGRESS_WINDOW_S * 1000 + 3000);
    clearInterval(timer);
    c.socket.destroy();
    assert.ok(ms !== null, 'the trickling upload is still open');
    // Nothing of it: no item, no staged file, no upload lease.
    const deadline = Date.now() + 3000;
    while ((stagingFiles().length > 0 || Number(stack.redis.cli('zcard', 'nd:uploads')) > 0) && Date.now() < deadline) await sleep(100);
    assert.deepEqual(stagingFiles(), []);
    assert.equal(Number(stack.redis.cli('zcard', 'nd:uploads')), 0);
    const list = (await (await fetch(`${server.api}/library`, { headers: bearer(token) })).json()) as { items: unknown[] };
    assert.deepEqual(list.items, []);
  });

  it('does not cut an upload that is slow but stays above the floor for several windows', async () => {
    const chunk = 12 * KiB; // every 500 ms: 48 KiB per 2 s window, six times the floor
    const chunks = 10;
    const c = await rawClient(server.port);
    c.socket.write(uploadHead(part.length + chunk * chunks + end.length));
    c.socket.write(part);
    const t0 = Date.now();
    for (let i = 0; i < chunks && !c.closed; i++) {
      c.socket.write(randomBytes(chunk));
      await sleep(500);
    }
    c.socket.write(end);
    const deadline = Date.now() + 3000;
    while (!/\r\n\r\n/.test(c.answer()) && !c.closed && Date.now() < deadline) await sleep(50);
    c.socket.destroy();
    assert.ok(Date.now() - t0 > PROGRESS_WINDOW_S * 2000, 'it took several windows');
    assert.match(c.answer(), /^HTTP\/1\.1 201 /);
  });

  it(`refuses connections beyond ${MAX_PER_IP} from one address with 429, while another address is served`, async () => {
    const holders = await Promise.all(Array.from({ length: MAX_PER_IP }, () => rawClient(server.port, '127.0.0.3')));
    const get = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    try {
      const extra = await rawClient(server.port, '127.0.0.3');
      extra.socket.write(get);
      assert.ok((await extra.closedWithin(3000)) !== null, 'the refused connection is closed');
      assert.match(extra.answer(), /^HTTP\/1\.1 429 /);
      assert.match(extra.answer(), /content-type: application\/problem\+json/i);

      const other = await rawClient(server.port, '127.0.0.2');
      other.socket.write(get);
      const deadline = Date.now() + 2000;
      while (!/\r\n\r\n/.test(other.answer()) && Date.now() < deadline) await sleep(20);
      other.socket.destroy();
      assert.match(other.answer(), /^HTTP\/1\.1 200 /, 'another address is still served');
    } finally {
      for (const h of holders) h.socket.destroy();
    }
    // Once the holders are gone, the address is served again.
    await sleep(200);
    const again = await rawClient(server.port, '127.0.0.3');
    again.socket.write(get);
    const deadline = Date.now() + 2000;
    while (!/\r\n\r\n/.test(again.answer()) && Date.now() < deadline) await sleep(20);
    again.socket.destroy();
    assert.match(again.answer(), /^HTTP\/1\.1 200 /);
  });
});
