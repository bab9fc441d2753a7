import type { DiscoveryConfig } from '@nondivy/config';
import { NONDIVY_VERSION } from '@nondivy/contracts';
import { notFoundHandler, observability, problemErrorHandler } from '@nondivy/http';
import type { Logger } from '@nondivy/log';
import { RedisDeviceStore, redisReady, RedisTransferStore, SiteIdentityStore, type Redis, waitForRedis } from '@nondivy/state';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { announce } from './announce.js';

export interface RunningDiscovery {
  url: string;
  siteId: string;
  close(): Promise<void>;
}

/**
 * The discovery service: announces the site on the LAN (DNS-SD, when NONDIVY_ANNOUNCE=1), and keeps
 * the device registry honest — devices whose heartbeats stopped are published as offline, offers
 * past their deadline as expired — once a second. Serves /healthz, /readyz and /metrics.
 */
export async function startDiscovery(config: DiscoveryConfig, log: Logger, redis: Redis): Promise<RunningDiscovery> {
  await waitForRedis(redis, log);
  // This site's id (made by whichever service starts first), announced on the LAN and given to linked sites.
  const siteId = await new SiteIdentityStore(redis).getOrCreate();
  const devices = new RedisDeviceStore(redis, config.sharing.presenceTtlMs);
  const transfers = new RedisTransferStore(redis);

  let sweeping = false;
  let failing = false;
  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      const gone = await devices.sweep();
      const expired = await transfers.expireDue();
      if (gone || expired) log.info({ devicesOffline: gone, offersExpired: expired }, 'presence swept');
      if (failing) log.info('presence sweep working again');
      failing = false;
    } catch (err) {
      if (!failing) log.warn({ err: { message: (err as Error).message } }, 'presence sweep failed; retrying');
      failing = true;
    } finally {
      sweeping = false;
    }
  };
  const timer = setInterval(sweep, 1000);
  timer.unref();

  // Health checks every few seconds would flood the log: no per-request lines (through the log
  // controller; fastify's top-level disableRequestLogging is deprecated and warns at every start).
  const app = Fastify({ loggerInstance: log as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  app.setErrorHandler(problemErrorHandler);
  app.setNotFoundHandler(notFoundHandler);
  await app.register(observability, {
    service: 'discovery',
    checks: {
      redis: async () => {
        if (!(await redisReady(redis))) throw new Error('redis does not answer');
      },
    },
  });
  await app.listen({ host: config.http.host, port: config.http.port });
  const port = (app.server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}`;

  let withdraw: (() => Promise<void>) | null = null;
  if (config.announce.enabled) {
    try {
      withdraw = await announce({ siteId, siteName: config.siteName, httpPort: config.announce.httpPort, ftpPort: config.announce.ftpPort, publicUrl: config.announce.publicUrl, version: NONDIVY_VERSION }, log, config.announce.interfaces);
    } catch (err) {
      log.error({ err }, 'could not announce the site on the LAN; devices can still use its address');
    }
  }
  log.info({ url, siteId, announce: config.announce.enabled }, 'discovery listening');
  return {
    url,
    siteId,
    close: async () => {
      clearInterval(timer);
      await withdraw?.();
      await app.close();
    },
  };
}
