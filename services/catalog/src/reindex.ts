import { loadCatalogConfig } from '@nondivy/config';
import { createLogger } from '@nondivy/log';
import { loadConfigOrExit } from '@nondivy/runtime';
import { createRedis, RedisSearchIndex, waitForRedis } from '@nondivy/state';

/**
 * `npm run reindex`: rebuilds the search index from the item store (after a change of the text
 * rules, or to repair). Uses REDIS_URL.
 */
const config = loadConfigOrExit(() => loadCatalogConfig());
const log = createLogger('reindex', config.logLevel);
if (!config.redis.url) {
  log.fatal('Set REDIS_URL to the Redis of the site to reindex');
  process.exit(2);
}
const redis = createRedis(config.redis.url, log, 'reindex');
await waitForRedis(redis, log, 10_000);
const t0 = Date.now();
const count = await new RedisSearchIndex(redis).rebuild((done) => log.debug({ done }, 'progress'));
log.info({ items: count, ms: Date.now() - t0 }, 'index rebuilt');
redis.disconnect();
