import { AuthService } from '@nondivy/auth';
import type { GatewayConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import { RedisLibraryState, RedisLoginThrottle, RedisSessionStore, RedisUserStore, type Redis } from '@nondivy/state';
import { createBlobStore, Library, type BlobStore } from '@nondivy/storage';
import { type CatalogApi, CatalogClient } from './catalog-client.js';
import { EventHub } from './event-hub.js';

/** What the gateway is built from: real clients in production, the same real clients in tests. */
export interface GatewayDeps {
  log: Logger;
  redis: Redis;
  blobs: BlobStore;
  library: Library;
  auth: AuthService;
  catalog: CatalogApi;
  events: EventHub;
}

/** Wires the gateway's dependencies from its configuration and an open Redis connection. */
export async function createGatewayDeps(config: GatewayConfig, log: Logger, redis: Redis, options: { blobs?: BlobStore; catalog?: CatalogApi } = {}): Promise<GatewayDeps> {
  const blobs = options.blobs ?? (await createBlobStore(config.blobs, log));
  const library = new Library({
    blobs,
    state: new RedisLibraryState(redis),
    log: log.child({ component: 'library' }),
    maxUploadBytes: config.library.maxUploadBytes,
    uploadLeaseMs: config.library.uploadLeaseSeconds * 1000,
  });
  const auth = new AuthService({
    users: new RedisUserStore(redis),
    sessions: new RedisSessionStore(redis),
    throttle: new RedisLoginThrottle(redis),
    sessionTtlSeconds: config.auth.sessionTtlSeconds,
    maxFailures: config.auth.maxLoginFailures,
    lockSeconds: config.auth.lockSeconds,
  });
  return { log, redis, blobs, library, auth, catalog: options.catalog ?? new CatalogClient(config.catalogUrl), events: new EventHub(redis, log.child({ worker: 'events' })) };
}
