import { ConfigError, loadGatewayConfig } from '@nondivy/config';
import { createLogger } from '@nondivy/log';
import { createRedis } from '@nondivy/state';
import { startGateway } from './start.js';

/** The gateway as its own process (Docker Compose): REDIS_URL is required. */
async function main() {
  let config;
  try {
    config = loadGatewayConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger('gateway', config.logLevel);
  if (!config.redis.url) {
    log.fatal('REDIS_URL is required when the gateway runs as its own service');
    process.exit(2);
  }
  const redis = createRedis(config.redis.url, log, 'gateway');
  const gateway = await startGateway(config, log, redis);
  const stop = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await gateway.close();
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
