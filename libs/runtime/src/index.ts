import { ConfigError, type LogLevel, type ResumableUploadLimits } from '@nondivy/config';
import { createLogger, type Logger } from '@nondivy/log';
import { AuthService } from '@nondivy/auth';
import { unavailable } from '@nondivy/errors';
import { createRedis, RedisLibraryState, RedisLoginThrottle, RedisSessionStore, RedisUploadStore, RedisUserStore, type Redis } from '@nondivy/state';
import { Library, ResumableUploads, type BlobStore } from '@nondivy/storage';

/**
 * Loads a service's configuration, or ends the process with exit status 2 and the one message that
 * names every bad variable (no stack trace: it is the operator's input, not a bug).
 */
export function loadConfigOrExit<C>(load: () => C): C {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits: stop accepting, finish in-flight work, close
 * connections. A second signal while stopping is ignored; a failure while stopping is logged.
 */
/**
 * How long a graceful shutdown may take before the process exits anyway (status 1): under the
 * Compose file's stop_grace_period (30 s), so that the log says so before Docker's SIGKILL would.
 */
const SHUTDOWN_GRACE_MS = 25_000;

export function onShutdown(log: Logger, stop: () => Promise<void>, graceMs = SHUTDOWN_GRACE_MS): void {
  let stopping = false;
  const handle = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    // A stop that never ends (a connection that will not close) must not keep the process forever:
    // past the grace period it exits anyway, and says so (what was still closing is logged above).
    setTimeout(() => {
      log.error({ graceMs }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, graceMs).unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handle('SIGTERM'));
  process.on('SIGINT', () => handle('SIGINT'));
}

/**
 * The `main` of a service that runs as its own process (Docker Compose): configuration, logger,
 * Redis from REDIS_URL (required there), start, graceful shutdown.
 */
export function runService<C extends { logLevel: LogLevel; redis: { url?: string } }>(
  name: string,
  load: () => C,
  start: (config: C, log: Logger, redis: Redis) => Promise<{ close(): Promise<void> }>,
): void {
  const config = loadConfigOrExit(load);
  const log = createLogger(name, config.logLevel);
  if (!config.redis.url) {
    log.fatal(`REDIS_URL is required when the ${name} runs as its own service`);
    process.exit(2);
  }
  const redis = createRedis(config.redis.url, log, name);
  start(config, log, redis).then(
    (service) =>
      onShutdown(log, async () => {
        await service.close();
        redis.disconnect();
      }),
    (err: unknown) => {
      log.fatal({ err }, 'start-up failed');
      process.exit(1);
    },
  );
}

/** The library over Redis and a blob store, as every front door (gateway, FTP) opens it. */
export function createLibrary(options: { redis: Redis; blobs: BlobStore; log: Logger; maxUploadBytes: number; uploadLeaseSeconds: number }): Library {
  return new Library({
    blobs: options.blobs,
    state: new RedisLibraryState(options.redis),
    log: options.log.child({ component: 'library' }),
    maxUploadBytes: options.maxUploadBytes,
    uploadLeaseMs: options.uploadLeaseSeconds * 1000,
  });
}

/** Resumable uploads over Redis (records, locks, caps) into the library's staging, as every front door opens them. */
export function createResumableUploads(options: { redis: Redis; library: Library; log: Logger } & ResumableUploadLimits): ResumableUploads {
  return new ResumableUploads({
    library: options.library,
    store: new RedisUploadStore(options.redis),
    log: options.log.child({ component: 'uploads' }),
    expiryMs: options.expirySeconds * 1000,
    maxUnfinished: options.maxUnfinished,
    maxUnfinishedBytes: options.maxUnfinishedBytes,
  });
}

/** Accounts and logins over Redis; the per-address failure counters are shared by every front door. */
export function createAuthService(redis: Redis, options: { maxLoginFailures: number; lockSeconds: number; sessionTtlSeconds?: number }): AuthService {
  return new AuthService({
    users: new RedisUserStore(redis),
    sessions: new RedisSessionStore(redis),
    throttle: new RedisLoginThrottle(redis),
    sessionTtlSeconds: options.sessionTtlSeconds ?? 3600,
    maxFailures: options.maxLoginFailures,
    lockSeconds: options.lockSeconds,
  });
}

/** Waits for the blob store, retrying, so a service can start before MinIO. */
export async function waitForBlobStore(blobs: BlobStore, log: Logger, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await blobs.init();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw unavailable('The blob store did not answer in time', err);
      if (attempt === 0) log.warn({ err: { message: (err as Error).message } }, 'waiting for the blob store');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
export { freeLoopbackPort } from './free-port.js';
export { directRequestBody, lingerAfter, readsDirect, requestBody, socketChunks, type LentChunks } from './socket-chunks.js';
