import { Redis, ReplyError } from 'ioredis';
import { AppError, unavailable } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';

/** How long a command may wait for Redis before the caller gets a 503. */
export const REDIS_COMMAND_TIMEOUT_MS = 2000;

/**
 * Opens the shared Redis connection, configured to fail fast and heal by itself:
 * - no offline queue: while disconnected, commands fail at once (→ 503) instead of queueing for minutes;
 * - a 2 s command timeout catches a Redis that accepts connections but does not answer;
 * - reconnection forever, backing off to at most one attempt per second.
 * Connection errors are logged once per outage, not once per retry.
 */
export function createRedis(url: string, log: Logger, name = 'nondivy'): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: REDIS_COMMAND_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(times * 100, 1000),
    lazyConnect: true,
  });
  let down = false;
  let closing = false;
  const lost = (detail: Record<string, unknown>) => {
    if (!down && !closing) log.error(detail, 'redis connection lost');
    down = true;
  };
  redis.on('error', (err: NodeJS.ErrnoException) => lost({ err: { message: err.message, code: err.code } }));
  redis.on('close', () => lost({}));
  redis.on('end', () => (closing = true));
  const quit = redis.quit.bind(redis);
  const disconnect = redis.disconnect.bind(redis);
  redis.quit = ((...args: Parameters<typeof quit>) => ((closing = true), quit(...args))) as typeof quit;
  redis.disconnect = ((...args: Parameters<typeof disconnect>) => ((closing = true), disconnect(...args))) as typeof disconnect;
  redis.on('ready', () => {
    if (down) log.info('redis connection restored');
    down = false;
  });
  return redis;
}

/**
 * Waits until Redis answers, retrying until `timeoutMs`. Services call this at start-up so that
 * they wait for Redis instead of crashing when started before it.
 */
export async function waitForRedis(redis: Redis, log: Logger, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  if (redis.status === 'wait') redis.connect().catch(() => undefined);
  let warned = false;
  for (;;) {
    try {
      if (redis.status === 'ready') {
        await redis.ping();
        return;
      }
    } catch {
      /* retried below */
    }
    if (Date.now() > deadline) throw unavailable('Redis did not answer in time');
    if (!warned && Date.now() > deadline - timeoutMs + 2000) {
      log.warn('waiting for redis');
      warned = true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN)/;

/**
 * Translates a Redis client failure into an AppError: connection problems, timeouts and transient
 * server states become `unavailable` (503); other reply errors are bugs and stay as they are.
 */
export function redisError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  if (err instanceof ReplyError) {
    return TRANSIENT_REPLY.test((err as Error).message) ? unavailable('The database is not ready', err) : err;
  }
  if (err instanceof Error) return unavailable('The database is unavailable', err);
  return err;
}

/** Runs one unit of Redis work, translating failures at this boundary. */
export async function withRedis<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw redisError(err);
  }
}

/** True when Redis answers a PING within the command timeout. */
export async function redisReady(redis: Redis): Promise<boolean> {
  try {
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  }
}
