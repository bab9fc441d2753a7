import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '@nondivy/log';

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface EmbeddedRedis {
  url: string;
  stop(): Promise<void>;
}

export class RedisNotInstalledError extends Error {
  constructor() {
    super(
      'No Redis to use: REDIS_URL is not set and `redis-server` is not installed. ' +
        'Install it (Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`) or set REDIS_URL=redis://host:6379.',
    );
  }
}

/**
 * Starts a private `redis-server` for standalone mode: loopback only, on a free port, persisting to
 * `<dataDir>/redis` with the append-only file on, and stopped (with a final save) on exit.
 */
export async function startEmbeddedRedis(dataDir: string, log: Logger): Promise<EmbeddedRedis> {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) throw new RedisNotInstalledError();
  const dir = join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output = (output + String(d)).slice(-4000)));
  child.stderr?.on('data', (d) => (output = (output + String(d)).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  // Ready when it accepts connections, or failed when it exits first.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const status = await Promise.race([exited.then((c) => ({ exited: c })), new Promise((r) => setTimeout(r, 100)).then(() => null)]);
    if (status) throw new Error(`redis-server exited (code ${status.exited}): ${output.trim()}`);
    const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (ping.stdout?.trim() === 'PONG') break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start: ${output.trim()}`);
    }
  }
  log.info({ port, dir }, 'started the embedded redis-server');
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
