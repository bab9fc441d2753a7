import type { GatewayConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import { type Redis, waitForRedis } from '@nondivy/state';
import { waitForBlobStore } from '@nondivy/runtime';
import type { FastifyInstance } from 'fastify';
import { buildGateway } from './app.js';
import type { CatalogApi } from './catalog-client.js';
import { createGatewayDeps, type GatewayDeps } from './deps.js';
import { advertisedUrls } from './lan-url.js';

export interface RunningGateway {
  app: FastifyInstance;
  deps: GatewayDeps;
  /** A URL of this process on the address it listens on (loopback for a wildcard listen). */
  url: string;
  /** How clients reach the site: NONDIVY_PUBLIC_URL when set, else the first LAN address. */
  publicUrl: string;
  /** Every address to tell people: the public URL when set, else each LAN address (publicUrl first). */
  urls: string[];
  /** The admin's generated password, on the start that created the account (else undefined). */
  oneTimePassword?: string;
  /** Stops accepting, finishes in-flight requests, stops the sweeper and closes the blob store. */
  close(): Promise<void>;
}

/**
 * Starts the gateway on an open Redis connection: waits for Redis and the blob store, makes sure an
 * admin exists (printing a generated password once), starts the upload sweeper, listens.
 * `options.catalog` replaces the HTTP client of the catalog service (standalone mode calls the
 * catalog in-process, saving a second HTTP round per search).
 */
export async function startGateway(
  config: GatewayConfig,
  log: Logger,
  redis: Redis,
  options: { catalog?: CatalogApi; /** The caller shows the one-time password itself (the standalone banner); it is not logged. */ showsPassword?: boolean } = {},
): Promise<RunningGateway> {
  await waitForRedis(redis, log);
  const deps = await createGatewayDeps(config, log, redis, options);
  await waitForBlobStore(deps.blobs, log);

  const admin = await deps.auth.bootstrapAdmin(config.auth.adminPassword);
  if (admin.generatedPassword && options.showsPassword) {
    log.warn({ username: 'admin' }, 'created the admin account with a one-time password (shown when the site is ready)');
  } else if (admin.generatedPassword) {
    log.warn(
      { username: 'admin', oneTimePassword: admin.generatedPassword },
      'created the admin account with this one-time password; log in and keep it safe (it is not shown again). Set NONDIVY_ADMIN_PASSWORD to choose your own.',
    );
  }

  const stopSweeper = deps.library.startSweeper();
  const stopUploadSweeper = deps.uploads.startSweeper();
  deps.federation.startPinger();
  const app = await buildGateway(config, deps);
  const address = await app.listen({ host: config.http.host, port: config.http.port });
  const port = (app.server.address() as { port: number }).port;
  const shownHost = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  const urls = advertisedUrls(config.http.host, port, config.http.publicUrl);
  log.info({ address, url: urls[0], ...(urls.length > 1 ? { urls } : {}), docs: `${urls[0]}/docs`, blobs: config.blobs.driver }, 'gateway listening');
  return {
    app,
    deps,
    url,
    publicUrl: urls[0]!,
    urls,
    oneTimePassword: admin.generatedPassword,
    close: async () => {
      stopSweeper();
      stopUploadSweeper();
      await app.close();
      await deps.uploads.close();
      await deps.blobs.close();
    },
  };
}
