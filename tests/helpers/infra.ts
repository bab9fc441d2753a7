import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import S3rver from 's3rver';
import { freePort } from './ports.js';
import { startMinioContainer, startRedisContainer, testInfra } from './containers.js';

export { freePort, testInfra };

/** `count` consecutive free loopback ports (for an FTP passive range), as "first-last". */
export async function freePortRange(count: number): Promise<string> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20000 + Math.floor(Math.random() * 30000);
    const servers: Server[] = [];
    let ok = true;
    for (let p = first; p < first + count && ok; p++) {
      const srv = createServer();
      ok = await new Promise<boolean>((resolve) => {
        srv.once('error', () => resolve(false));
        srv.listen(p, '127.0.0.1', () => resolve(true));
      });
      if (ok) servers.push(srv);
    }
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (ok) return `${first}-${first + count - 1}`;
  }
  throw new Error('no free port range');
}

/** A throwaway folder, removed by `cleanup`. */
export function tempDir(prefix = 'nondivy-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A real redis-server of our own on a free loopback port, which a test may stop and restart. */
export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  cli(...args: string[]): string;
  close(): Promise<void>;
}

/** A Redis of our own: a local `redis-server`, or a `redis` container (TEST_INFRA, see containers.ts). */
export async function startRedis(): Promise<TestRedis> {
  if ((await testInfra()) === 'containers') return startRedisContainer();
  const dir = tempDir('nondivy-redis-');
  const port = await freePort();
  let child: ChildProcess | null = null;
  const cli = (...args: string[]) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
  const start = async () => {
    // AOF on, so that a test can stop and restart it without losing data (as a real deployment).
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir.path], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (cli('ping') === 'PONG') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('test redis-server did not start');
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, start, stop, cli, close: async () => { await stop(); dir.cleanup(); } };
}

/** A real S3 server (s3rver, files on disk) on a free loopback port, which a test may stop and restart. */
export interface TestS3 {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  directory: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** An S3 server with `bucket`: local s3rver, or a `minio` container (TEST_INFRA, see containers.ts). */
export async function startS3(bucket = 'nondivy'): Promise<TestS3> {
  if ((await testInfra()) === 'containers') return startMinioContainer(bucket);
  const dir = tempDir('nondivy-s3-');
  const port = await freePort();
  let server: S3rver | null = null;
  const start = async () => {
    server = new S3rver({ port, address: '127.0.0.1', directory: dir.path, silent: true, configureBuckets: [{ name: bucket }] });
    await server.run();
  };
  const stop = async () => {
    const s = server;
    server = null;
    if (s) await s.close();
  };
  await start();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    bucket,
    directory: dir.path,
    start,
    stop,
    close: async () => {
      await stop();
      dir.cleanup();
    },
  };
}
