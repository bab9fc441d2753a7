import { ConfigError, loadCatalogConfig } from '@nondivy/config';
import { createLogger } from '@nondivy/log';
import { createRedis } from '@nondivy/state';
import { startCatalog } from './start.js';

/** The catalog as its own process (Docker Compose): REDIS_URL is required. */
async function main() {
  let config;
  try {
    config = loadCatalogConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger('catalog', config.logLevel);
  if (!config.redis.url) {
    log.fatal('REDIS_URL is required when the catalog runs as its own service');
    process.exit(2);
  }
  const redis = createRedis(config.redis.url, log, 'catalog');
  const catalog = await startCatalog(config, log, redis);
  const stop = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await catalog.close();
    redis.disconnect();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
