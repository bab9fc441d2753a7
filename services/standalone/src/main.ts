import { CatalogSearch, startCatalog } from '@nondivy/catalog';
import { loadCatalogConfig, loadDiscoveryConfig, loadFtpConfig, loadGatewayConfig, loadLogFormat } from '@nondivy/config';
import { startDiscovery } from '@nondivy/discovery';
import { startFtpService } from '@nondivy/ftp';
import { startGateway } from '@nondivy/gateway';
import { createLogger, logFormatFor } from '@nondivy/log';
import { loadConfigOrExit, onShutdown } from '@nondivy/runtime';
import { createRedis } from '@nondivy/state';
import { banner, ftpUrl } from './banner.js';
import { DataDirInUseError, RedisNotInstalledError, startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js';

/**
 * Standalone mode (`npm start`, `nondivy start`): every service in one process on the embedded
 * defaults — blobs in ./data/blobs, Redis from REDIS_URL or a private redis-server.
 * This is the one composition root allowed to import several services.
 *
 * On a terminal (or NONDIVY_LOG_FORMAT=pretty) it prints a banner for people once ready — where to
 * open the site, a QR code, the FTP address, the first admin password — and human log lines;
 * elsewhere (Compose, systemd, tests) JSON lines only, the one-time password in one of them.
 */
async function main() {
  const gatewayConfig = loadConfigOrExit(() => loadGatewayConfig());
  const catalogConfig = loadConfigOrExit(() => loadCatalogConfig());
  const ftpConfig = loadConfigOrExit(() => loadFtpConfig());
  const discoveryConfig = loadConfigOrExit(() => loadDiscoveryConfig());
  const format = logFormatFor(loadConfigOrExit(() => loadLogFormat()));
  const log = createLogger('nondivy', gatewayConfig.logLevel, format);
  let embedded: EmbeddedRedis | undefined;
  let redisUrl = gatewayConfig.redis.url;
  if (!redisUrl) {
    try {
      embedded = await startEmbeddedRedis(gatewayConfig.dataDir, log);
    } catch (err) {
      log.fatal(err instanceof RedisNotInstalledError || err instanceof DataDirInUseError ? err.message : { err }, 'cannot start without Redis');
      process.exit(3);
    }
    redisUrl = embedded.url;
  }

  const redis = createRedis(redisUrl, log, 'standalone');
  const closers: [string, () => Promise<void>][] = [];
  const stop = async () => {
    for (const [part, close] of closers.reverse()) {
      log.info({ part }, 'closing');
      await close().catch((err) => log.error({ err, part }, 'error while closing'));
      log.info({ part }, 'closed');
    }
    redis.disconnect();
    await embedded?.stop();
  };
  onShutdown(log, stop);

  try {
    const catalog = await startCatalog({ ...catalogConfig, redis: { url: redisUrl } }, log.child({ component: 'catalog' }), redis);
    closers.push(['catalog', catalog.close]);
    // Same process: the gateway calls the catalog's search directly instead of over HTTP.
    const search = new CatalogSearch(redis);
    const gateway = await startGateway({ ...gatewayConfig, redis: { url: redisUrl }, catalogUrl: catalog.url }, log.child({ component: 'gateway' }), redis, {
      catalog: { search: (q) => search.search(q), facets: (q) => search.facets(q) },
      showsPassword: format === 'pretty',
    });
    closers.push(['gateway', gateway.close]);
    const ftp = await startFtpService({ ...ftpConfig, redis: { url: redisUrl } }, log.child({ component: 'ftp' }), redis);
    closers.push(['ftp', ftp.close]);
    // Announce the gateway and FTP ports actually in use (they may have been chosen at start).
    const gatewayPort = Number(new URL(gateway.url).port);
    const discovery = await startDiscovery(
      { ...discoveryConfig, redis: { url: redisUrl }, announce: { ...discoveryConfig.announce, httpPort: gatewayPort, ftpPort: ftp.ftp.port } },
      log.child({ component: 'discovery' }),
      redis,
    );
    closers.push(['discovery', discovery.close]);
    if (format === 'pretty') {
      const facts = { siteName: gatewayConfig.siteName, urls: gateway.urls, dataDir: gatewayConfig.dataDir, oneTimePassword: gateway.oneTimePassword };
      process.stdout.write(banner({ ...facts, ftpUrl: ftpUrl(ftpConfig.ftp, ftp.ftp.port, gateway.publicUrl) }));
    } else {
      log.info({ url: gateway.publicUrl, docs: `${gateway.publicUrl}/docs`, ftpPort: ftp.ftp.port, data: gatewayConfig.dataDir }, `Nondivy "${gatewayConfig.siteName}" is ready`);
    }
  } catch (err) {
    log.fatal({ err }, 'start-up failed');
    await stop();
    process.exit(1);
  }
}

void main();
