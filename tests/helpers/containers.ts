/**
 * Where the integration suites get Redis and the S3 server from: `TEST_INFRA=containers` runs real
 * `redis` and `minio` containers (Testcontainers), `TEST_INFRA=local` runs local processes
 * (`redis-server`, s3rver); unset, containers are used when a container engine answers, local
 * processes otherwise. The choice is printed once per test file.
 *
 * The containers offer what the local processes offer (infra.ts): a URL or endpoint, `stop()` and
 * `start()` for the fault suites (the container is stopped and started again, on the same host
 * port, keeping its data), `cli()` for Redis, `close()`. Only `TestS3.directory` (s3rver's folder)
 * has no counterpart. Testcontainers is loaded only on the container path.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import type { TestRedis, TestS3 } from './infra.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The images docker-compose.yml uses by default (tests/compose.test.ts checks they agree). */
export const DEFAULT_REDIS_IMAGE = 'redis:7.4-alpine';
export const DEFAULT_MINIO_IMAGE = 'minio/minio:RELEASE.2025-04-22T22-12-26Z';
const REDIS_IMAGE = process.env.TEST_REDIS_IMAGE || DEFAULT_REDIS_IMAGE;
const MINIO_IMAGE = process.env.TEST_MINIO_IMAGE || DEFAULT_MINIO_IMAGE;

export type TestInfra = 'containers' | 'local';

type Endpoint = { socketPath: string } | { host: string; port: number };

/** A Docker API endpoint from `unix:///path` or `tcp://host:port`; null for what we cannot probe ourselves (TLS, ssh, npipe). */
function endpointOf(dockerHost: string): Endpoint | null {
  if (dockerHost.startsWith('unix://')) return { socketPath: dockerHost.slice('unix://'.length) };
  if (dockerHost.startsWith('tcp://') && !process.env.DOCKER_TLS_VERIFY) {
    const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
    return { host: url.hostname, port: Number(url.port || 2375) };
  }
  return null;
}

/** `docker.host` from ~/.testcontainers.properties, where Testcontainers users may set it. */
function propertiesDockerHost(): string | undefined {
  const file = join(homedir(), '.testcontainers.properties');
  if (!existsSync(file)) return undefined;
  return /^\s*docker\.host\s*=\s*(\S+)/m.exec(readFileSync(file, 'utf8'))?.[1];
}

/** Answers true when a Docker API (Docker, Podman) answers `GET /_ping` within `timeoutMs`. */
function ping(endpoint: Endpoint, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...endpoint, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Where a container engine answers, as a label for the log line; null when none does. */
async function findEngine(): Promise<string | null> {
  const configured = process.env.DOCKER_HOST || propertiesDockerHost();
  if (configured) {
    const endpoint = endpointOf(configured);
    if (endpoint) return (await ping(endpoint)) ? configured : null;
    // TLS, ssh:// or npipe: let Testcontainers itself try (it is needed anyway when this works).
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      await Promise.race([getContainerRuntimeClient(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 10_000).unref())]);
      return configured;
    } catch {
      return null;
    }
  }
  const runtimeDir = process.env.XDG_RUNTIME_DIR ?? (process.getuid ? `/run/user/${process.getuid()}` : '');
  const sockets = [
    '/var/run/docker.sock',
    join(homedir(), '.docker/run/docker.sock'),
    join(homedir(), '.docker/desktop/docker.sock'),
    ...(runtimeDir ? [join(runtimeDir, 'docker.sock'), join(runtimeDir, 'podman/podman.sock')] : []),
  ];
  for (const socketPath of sockets) {
    if (existsSync(socketPath) && (await ping({ socketPath }))) {
      // Testcontainers finds Docker's usual sockets by itself, but not Podman's: name it.
      process.env.DOCKER_HOST = `unix://${socketPath}`;
      return socketPath;
    }
  }
  return null;
}

let chosen: Promise<TestInfra> | undefined;

/** The test infrastructure of this process, decided once (see the file's comment). */
export function testInfra(): Promise<TestInfra> {
  chosen ??= (async (): Promise<TestInfra> => {
    const asked = process.env.TEST_INFRA;
    if (asked === 'containers' || asked === 'local') {
      console.log(`test infrastructure: ${asked === 'containers' ? 'containers' : 'local processes'} (TEST_INFRA=${asked})`);
      return asked;
    }
    if (asked) throw new Error(`TEST_INFRA must be "containers" or "local" (or unset), not "${asked}"`);
    const engine = await findEngine();
    console.log(engine ? `test infrastructure: containers (a container engine answered at ${engine})` : 'test infrastructure: local processes (no container engine answered)');
    return engine ? 'containers' : 'local';
  })();
  return chosen;
}

/** Stops and starts a container in place (same host ports, same data), through the engine's API. */
async function controls(id: string) {
  const { getContainerRuntimeClient } = await import('testcontainers');
  const client = await getContainerRuntimeClient();
  const container = client.container.getById(id);
  let running = true;
  return {
    stop: async () => {
      if (!running) return;
      running = false;
      await client.container.stop(container, { timeout: 10 });
    },
    start: async () => {
      if (running) return;
      await client.container.start(container);
      running = true;
    },
  };
}

async function until(what: string, probe: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come back within ${ms} ms`);
}

/** Sends a Redis PING over a fresh connection. */
function redisPing(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let answer = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      answer += d.toString();
      if (answer.includes('\r\n')) {
        socket.destroy();
        resolve(answer.startsWith('+PONG'));
      }
    });
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(false));
  });
}

/** One Redis command, answered as redis-cli prints it (redis-cli when installed, else a Node client). */
const NODE_CLI = `
import { Redis } from 'ioredis';
const [host, port, command, ...args] = process.argv.slice(1);
const redis = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
const show = (v) => (v === null ? '' : Array.isArray(v) ? v.map(show).join('\\n') : String(v));
try {
  await redis.connect();
  process.stdout.write(show(await redis.call(command, ...args)));
} catch (err) {
  process.stdout.write(err?.message?.startsWith('ERR') ? err.message : '');
} finally {
  redis.disconnect();
}
`;

function redisCli(host: string, port: number): (...args: string[]) => string {
  const hasRedisCli = spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status === 0;
  return (...args: string[]) =>
    hasRedisCli
      ? spawnSync('redis-cli', ['-h', host, '-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim()
      : spawnSync(process.execPath, ['--input-type=module', '-e', NODE_CLI, host, String(port), ...args], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
}

/** A `redis` container, AOF on as in docker-compose.yml, published on a fixed free host port. */
export async function startRedisContainer(): Promise<TestRedis> {
  const { RedisContainer } = await import('@testcontainers/redis');
  const hostPort = await freePort();
  const container = await new RedisContainer(REDIS_IMAGE)
    .withCommand(['redis-server', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'])
    // A fixed host port, so that a stopped and started container keeps its address.
    .withExposedPorts({ container: 6379, host: hostPort })
    .start();
  const host = container.getHost();
  const port = container.getPort();
  const engine = await controls(container.getId());
  return {
    url: `redis://${host}:${port}`,
    port,
    cli: redisCli(host, port),
    stop: engine.stop,
    start: async () => {
      await engine.start();
      await until('the redis container', () => redisPing(host, port));
    },
    close: async () => {
      await container.stop();
    },
  };
}

/** A `minio` container with the bucket created, published on a fixed free host port. */
export async function startMinioContainer(bucket: string): Promise<TestS3> {
  const { MinioContainer } = await import('@testcontainers/minio');
  const accessKey = 'nondivy-test';
  const secretKey = 'nondivy-test-secret';
  const hostPort = await freePort();
  const container = await new MinioContainer(MINIO_IMAGE)
    .withUsername(accessKey)
    .withPassword(secretKey)
    .withExposedPorts({ container: 9000, host: hostPort })
    .start();
  const endpoint = `http://${container.getHost()}:${container.getPort()}`;
  const { S3BlobStore } = await import('@nondivy/storage');
  const store = await S3BlobStore.create({ endpoint, accessKey, secretKey, bucket, region: 'us-east-1', partSize: 5 * 1024 * 1024 });
  await store.init(); // creates the bucket
  await store.close();
  const engine = await controls(container.getId());
  return {
    endpoint,
    accessKey,
    secretKey,
    bucket,
    get directory(): string {
      throw new Error('TestS3.directory is the local S3 server\'s folder; a MinIO container has none (run with TEST_INFRA=local)');
    },
    stop: engine.stop,
    start: async () => {
      await engine.start();
      await until('the minio container', async () => (await fetch(`${endpoint}/minio/health/live`)).status === 200);
    },
    close: async () => {
      await container.stop();
    },
  };
}
