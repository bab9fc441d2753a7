import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, freePortRange, startRedis, tempDir, type TestRedis } from './infra.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** The standalone server run as a child process, exactly as `npm start` runs it. */
export interface TestServer {
  url: string;
  api: string;
  port: number;
  /** The FTP front door's control port (passive ports: `pasvRange`). */
  ftpPort: number;
  pasvRange: string;
  logs: LogLine[];
  rawOutput(): string;
  child: ChildProcess;
  /** SIGTERM and wait (graceful). */
  stop(): Promise<number | null>;
  /** SIGKILL: the process dies without cleaning up. */
  kill(): Promise<void>;
}

/**
 * The environment of a standalone server child with every door on loopback (tests stay off the
 * machine's network): HTTP on `port`, FTP on `ftpPort` with passive ports `pasvRange`, the catalog
 * and discovery on any free port; PATH and HOME only from this process, logs at info.
 */
export function loopbackEnv(port: number, ftpPort: number, pasvRange: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    LOG_LEVEL: 'info',
    NONDIVY_HTTP_HOST: '127.0.0.1',
    NONDIVY_HTTP_PORT: String(port),
    NONDIVY_CATALOG_HOST: '127.0.0.1',
    NONDIVY_CATALOG_PORT: '0',
    NONDIVY_DISCOVERY_HOST: '127.0.0.1',
    NONDIVY_DISCOVERY_PORT: '0',
    NONDIVY_FTP_HOST: '127.0.0.1',
    NONDIVY_FTP_PORT: String(ftpPort),
    NONDIVY_FTP_PASV_RANGE: pasvRange,
  };
}

/**
 * Starts dist/standalone.mjs with `env`. `prefix` runs it through another command (e.g. `ip netns
 * exec NS`, to put it on a test LAN), `host` is the address its URLs use (default 127.0.0.1).
 */
export async function startServer(env: Record<string, string>, options: { port?: number; prefix?: string[]; host?: string } = {}): Promise<TestServer> {
  const port = options.port ?? (await freePort());
  const ftpPort = Number(env.NONDIVY_FTP_PORT ?? (await freePort()));
  const pasvRange = env.NONDIVY_FTP_PASV_RANGE ?? (await freePortRange(8));
  const argv = [...(options.prefix ?? []), process.execPath, '--enable-source-maps', 'dist/standalone.mjs'];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: ROOT,
    env: { ...loopbackEnv(port, ftpPort, pasvRange), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let raw = '';
  let buffer = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onLine = (line: string) => {
      try {
        const entry = JSON.parse(line) as LogLine;
        logs.push(entry);
        if (/is ready/.test(entry.msg)) resolve();
      } catch {
        /* not JSON: kept in raw */
      }
    };
    child.stdout!.on('data', (d: Buffer) => {
      raw += d;
      buffer += d;
      let i: number;
      while ((i = buffer.indexOf('\n')) >= 0) {
        onLine(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (raw += d));
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before it was ready:\n${raw}`)));
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    await ready;
  } finally {
    clearTimeout(timeout);
  }
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  return {
    url,
    api: `${url}/api/v1`,
    port,
    ftpPort,
    pasvRange,
    logs,
    rawOutput: () => raw,
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t0 = Date.now();
      const code = await exited;
      // A slow stop is a defect to find: say which part was still closing (the standalone logs each).
      if (Date.now() - t0 > 10_000) {
        const tail = logs.slice(-15).map((l) => JSON.stringify(l)).join('\n');
        console.log(`# the server took ${Date.now() - t0} ms to stop (exit ${code}); its last log lines:\n${tail.replace(/^/gm, '# ')}`);
      }
      return code;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The standalone server over a Redis and a data folder of its own. */
export interface ServerWithRedis {
  redis: TestRedis;
  data: { path: string; cleanup(): void };
  server: TestServer;
  /** Stops the server, then Redis, then removes the data folder. */
  close(): Promise<void>;
}

/**
 * Starts a Redis, a data folder and the standalone server over both, the admin's password
 * 'admin-password' unless `env` sets NONDIVY_ADMIN_PASSWORD. A server that does not start takes
 * its Redis and folder with it, so a failed `before` leaves nothing running.
 */
export async function startServerWithRedis(env: Record<string, string> = {}): Promise<ServerWithRedis> {
  const redis = await startRedis();
  const data = tempDir();
  let server: TestServer;
  try {
    server = await startServer({ REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: 'admin-password', ...env });
  } catch (err) {
    await redis.close();
    data.cleanup();
    throw err;
  }
  return {
    redis,
    data,
    server,
    close: async () => {
      await server.stop();
      await redis.close();
      data.cleanup();
    },
  };
}
