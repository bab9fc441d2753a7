/**
 * Builds the gateway in-process for `app.inject` tests (fastify/demo's test/helper.ts): the same
 * `createGatewayDeps` and `buildGateway` as production, over real components of the test's own — a
 * `redis-server` on a free loopback port (no persistence, ~50 ms to start) and an fs blob store in a
 * throwaway folder. Nothing listens; requests go through `app.inject`. Used by the unit tests beside
 * the routes only (excluded from the build like `*.test.ts`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig, type GatewayConfig } from '@nondivy/config';
import type { Item } from '@nondivy/contracts';
import { createLogger } from '@nondivy/log';
import { freeLoopbackPort } from '@nondivy/runtime';
import { createRedis, type Redis } from '@nondivy/state';
import { FsBlobStore } from '@nondivy/storage';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildGateway } from './app.js';
import { createGatewayDeps, type GatewayDeps } from './deps.js';

/**
 * One gateway for every route test of the process, built on first use and closed after the last
 * test (a hook of the root test, registered when this module loads). Each build costs about a
 * second of imports, schema compilation and password hashing, which per file would double the unit
 * tier's run time; tests that need other settings, or break their Redis, build their own with
 * `buildTestGateway`. Tests sharing it use their own accounts and items, and assert no global counts.
 */
let shared: Promise<TestGateway> | undefined;
export function sharedGateway(): Promise<TestGateway> {
  shared ??= buildTestGateway();
  return shared;
}
after(async () => {
  if (shared) await (await shared.catch(() => undefined))?.close();
});

/** The first admin's password in every test gateway. */
export const ADMIN_PASSWORD = 'admin-password-for-tests';

/** A memory-backed folder where there is one: each upload's fsync on a busy disk would dominate the tests' time. */
const TMP = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

/** True when a Redis answers PING on `port` (a raw socket: no client to configure for one probe). */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(d.toString().startsWith('+PONG')));
    socket.on('error', () => done(false));
    socket.on('timeout', () => done(false));
  });
}

/** A redis-server of the test's own, stopped by its pid. */
export interface TestRedisServer {
  url: string;
  stop(): Promise<void>;
}

/** Starts `redis-server` on a free loopback port, without persistence, and waits until it answers. */
export async function startTestRedis(): Promise<TestRedisServer> {
  const port = await freeLoopbackPort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      spawnError = err;
      resolve();
    });
  });
  // Should this process end without `stop` (a crash, an interrupted run), the server ends with it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null && !spawnError) child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null || spawnError) break;
    if (await pings(port)) return { url: `redis://127.0.0.1:${port}`, stop };
    await new Promise((r) => setTimeout(r, 10));
  }
  await stop();
  throw new Error(`the test redis-server did not start${spawnError ? ` (${spawnError.message}: is redis-server installed?)` : ''}`);
}

/** A built (not listening) gateway and what it runs on. */
export interface TestGateway {
  app: FastifyInstance;
  deps: GatewayDeps;
  config: GatewayConfig;
  /** Logs in and returns the bearer token. */
  login(username: string, password: string): Promise<string>;
  /** Creates an account as the admin (once per gateway) and logs it in; returns its token. */
  userToken(username: string, role?: 'member' | 'admin'): Promise<string>;
  /** The admin's token. */
  adminToken: string;
  /** The gateway's own redis-server (a test may stop it to see the gateway without Redis). */
  redisServer: TestRedisServer;
  /** Uploads one file by multipart (as a browser would) and returns the answer. */
  upload(token: string | null, file: { filename: string; data: Buffer; contentType?: string }, fields?: Record<string, string>): Promise<LightMyRequestResponse>;
  /** Closes the app, the Redis connection and server, and removes the data folder. */
  close(): Promise<void>;
}

/** A multipart/form-data body built by hand: text fields, then files, each part as browsers send it. */
export function multipartBody(parts: ({ name: string; value: string } | { name: string; filename: string; contentType?: string; data: Buffer })[]): { body: Buffer; contentType: string } {
  const boundary = `----nondivy${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if ('value' in part) {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`));
    } else {
      chunks.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"; filename="${part.filename}"\r\n` +
            `Content-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`,
        ),
        part.data,
        Buffer.from('\r\n'),
      );
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * Builds a gateway over its own Redis and blob folder, with the first admin created. `env` adds
 * settings (as the process environment would: e.g. NONDIVY_MAX_UPLOAD_BYTES). Call `close` after.
 */
export async function buildTestGateway(env: Record<string, string> = {}): Promise<TestGateway> {
  const dir = await mkdtemp(join(TMP, 'nondivy-gateway-'));
  let server: TestRedisServer | undefined;
  let redis: Redis | undefined;
  let app: FastifyInstance | undefined;
  const close = async () => {
    await app?.close();
    redis?.disconnect();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    server = await startTestRedis();
    const config = loadGatewayConfig({ LOG_LEVEL: 'silent', NONDIVY_DATA_DIR: dir, REDIS_URL: server.url, NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD, ...env });
    const log = createLogger('gateway-test', config.logLevel);
    redis = createRedis(server.url, log, 'gateway-test');
    await redis.connect();
    const blobs = new FsBlobStore(join(dir, 'blobs'));
    await blobs.init();
    const deps = await createGatewayDeps(config, log, redis, { blobs });
    await deps.auth.bootstrapAdmin(ADMIN_PASSWORD);
    app = await buildGateway(config, deps);
    await app.ready();
    const built = app;

    const login = async (username: string, password: string) => {
      const res = await built.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password } });
      if (res.statusCode !== 200) throw new Error(`login of ${username} answered ${res.statusCode}: ${res.body}`);
      return (res.json() as { token: string }).token;
    };
    const adminToken = await login('admin', ADMIN_PASSWORD);
    const tokens = new Map<string, Promise<string>>();
    return {
      app: built,
      deps,
      config,
      login,
      adminToken,
      redisServer: server,
      userToken(username, role = 'member') {
        const make = async () => {
          const password = `${username}-password`;
          const res = await built.inject({
            method: 'POST',
            url: '/api/v1/users',
            headers: { authorization: `Bearer ${adminToken}` },
            payload: { username, password, role },
          });
          if (res.statusCode !== 201) throw new Error(`creating ${username} answered ${res.statusCode}: ${res.body}`);
          return login(username, password);
        };
        let token = tokens.get(username);
        if (!token) tokens.set(username, (token = make()));
        return token;
      },
      upload(token, file, fields = {}) {
        const { body, contentType } = multipartBody([
          ...Object.entries(fields).map(([name, value]) => ({ name, value })),
          { name: 'file', filename: file.filename, contentType: file.contentType, data: file.data },
        ]);
        return built.inject({
          method: 'POST',
          url: '/api/v1/library',
          headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
          payload: body,
        });
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The item a 201 upload answered with. */
export const uploadedItem = (res: LightMyRequestResponse): Item => {
  if (res.statusCode !== 201) throw new Error(`upload answered ${res.statusCode}: ${res.body}`);
  return res.json() as Item;
};
