import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@nondivy/errors';
import { RelayHub } from './relay.js';

/**
 * The relay's digest check (files from a linked site carry their SHA-256): a loopback HTTP server
 * whose PUT /<key> is the sender and GET /<key> the receiver, as the sharing routes wire them.
 */
describe('the relay checks a file offered with its SHA-256', () => {
  const hub = new RelayHub(5_000);
  const expected = new Map<string, { size: number; sha256: string }>();
  const sent = new Map<string, Promise<void>>();
  let server: Server;
  let port: number;

  before(async () => {
    server = createServer((req, res) => {
      const key = req.url!.slice(1);
      const want = expected.get(key)!;
      if (req.method === 'GET') {
        hub.receive(key, res, want.size).catch(() => undefined);
        return;
      }
      const done = hub.send(key, req, want.size, undefined, want.sha256);
      sent.set(key, done);
      done.then(
        () => res.writeHead(204).end(),
        (err: AppError) => res.writeHead(400, { connection: 'close' }).end(err.message),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  after(() => new Promise<void>((r) => server.close(() => r())));

  /** The receiver's GET: the bytes it got, and whether its response ended whole. */
  function receive(key: string): Promise<{ bytes: Buffer; complete: boolean }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      const req = request({ port, host: '127.0.0.1', path: `/${key}` }, (res) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ bytes: Buffer.concat(chunks), complete: res.complete }));
        res.on('error', () => resolve({ bytes: Buffer.concat(chunks), complete: false }));
        res.on('aborted', () => undefined);
      });
      req.on('error', () => resolve({ bytes: Buffer.concat(chunks), complete: false }));
      req.end();
    });
  }

  /** The sender's PUT of `body` in 64 KiB writes: the status it got. */
  function send(key: string, body: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', path: `/${key}`, method: 'PUT', headers: { 'content-length': String(body.length) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      for (let i = 0; i < body.length; i += 65536) req.write(body.subarray(i, i + 65536));
      req.end();
    });
  }

  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('delivers every byte when they match the digest', async () => {
    const file = randomBytes(3 * 1024 * 1024 + 17);
    expected.set('good', { size: file.length, sha256: sha(file) });
    const got = receive('good');
    assert.equal(await send('good', file), 204);
    const { bytes, complete } = await got;
    assert.equal(complete, true);
    assert.equal(sha(bytes), sha(file));
  });

  it('delivers an empty file offered with the empty digest', async () => {
    expected.set('empty', { size: 0, sha256: sha(Buffer.alloc(0)) });
    const got = receive('empty');
    assert.equal(await send('empty', Buffer.alloc(0)), 204);
    assert.deepEqual(await got, { bytes: Buffer.alloc(0), complete: true });
  });

  it('never completes the receiver’s file when one byte differs: the sender is told why', async () => {
    const file = randomBytes(2 * 1024 * 1024);
    expected.set('bad', { size: file.length, sha256: sha(file) });
    const tampered = Buffer.from(file);
    tampered[1_000_000] ^= 1;
    const got = receive('bad');
    assert.equal(await send('bad', tampered), 400);
    await assert.rejects(sent.get('bad')!, (err: AppError) => err.kind === 'bad_input' && /do not match the SHA-256/.test(err.message));
    const { bytes, complete } = await got;
    assert.equal(complete, false, 'the receiver’s response is cut');
    assert.ok(bytes.length < file.length, `the last chunk is held back (${bytes.length} of ${file.length})`);
    assert.equal(hub.active, 0, 'nothing left in the relay');
  });
});
