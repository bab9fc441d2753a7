import { startCatalog } from '@nondivy/catalog';
import { ConfigError, loadCatalogConfig, loadGatewayConfig } from '@nondivy/config';
import { startGateway } from '@nondivy/gateway';
import { createLogger } from '@nondivy/log';
import { createRedis } from '@nondivy/state';
import { RedisNotInstalledError, startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js';

/**
 * Standalone mode (`npm start`, `nondivy start`): every service in one process on the embedded
 * defaults — blobs in ./data/blobs, Redis from REDIS_URL or a private redis-server.
 * This is the one composition root allowed to import several services.
 */
async function main() {
  let gatewayConfig;
  let catalogConfig;
  try {
    gatewayConfig = loadGatewayConfig();
    catalogConfig = loadCatalogConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger('nondivy', gatewayConfig.logLevel);
  let embedded: EmbeddedRedis | undefined;
  let redisUrl = gatewayConfig.redis.url;
  if (!redisUrl) {
    try {
      embedded = await startEmbeddedRedis(gatewayConfig.dataDir, log);
    } catch (err) {
      log.fatal(err instanceof RedisNotInstalledError ? err.message : { err }, 'cannot start without Redis');
      process.exit(3);
    }
    redisUrl = embedded.url;
  }

  const redis = createRedis(redisUrl, log, 'standalone');
  const leaseSeconds = Number(process.env.NONDIVY_UPLOAD_LEASE_SECONDS);
  const closers: (() => Promise<void>)[] = [];
  let stopping = false;
  const stop = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    for (const close of closers.reverse()) await close().catch((err) => log.error({ err }, 'error while closing'));
    redis.disconnect();
    await embedded?.stop();
    process.exit(code);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  try {
    const catalog = await startCatalog({ ...catalogConfig, redis: { url: redisUrl } }, log.child({ component: 'catalog' }), redis);
    closers.push(catalog.close);
    const gateway = await startGateway(gatewayConfig, log.child({ component: 'gateway' }), redis, {
      uploadLeaseMs: Number.isFinite(leaseSeconds) && leaseSeconds > 0 ? leaseSeconds * 1000 : undefined,
    });
    closers.push(gateway.close);
    log.info({ url: gateway.url, docs: `${gateway.url}/docs`, data: gatewayConfig.dataDir }, `Nondivy "${gatewayConfig.siteName}" is ready`);
  } catch (err) {
    log.fatal({ err }, 'start-up failed');
    await stop('startup-failure', 1);
  }
}

void main();
