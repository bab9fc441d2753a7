import type { AuthService } from '@nondivy/auth';
import type { GatewayConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import { createAuthService, createLibrary } from '@nondivy/runtime';
import { RedisDeviceStore, RedisFederationStore, RedisTransferStore, type Redis } from '@nondivy/state';
import { RelayHub } from './relay.js';
import { Federation } from './federation.js';
import { lanUrl } from './lan-url.js';
import { createBlobStore, type BlobStore, type Library } from '@nondivy/storage';
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
  devices: RedisDeviceStore;
  transfers: RedisTransferStore;
  relay: RelayHub;
  federation: Federation;
}

/** Wires the gateway's dependencies from its configuration and an open Redis connection. */
export async function createGatewayDeps(config: GatewayConfig, log: Logger, redis: Redis, options: { blobs?: BlobStore; catalog?: CatalogApi } = {}): Promise<GatewayDeps> {
  const blobs = options.blobs ?? (await createBlobStore(config.blobs, log));
  const library = createLibrary({ redis, blobs, log, ...config.library });
  const auth = createAuthService(redis, config.auth);
  return { log, redis, blobs, library, auth, catalog: options.catalog ?? new CatalogClient(config.catalogUrl), events: new EventHub(redis, log.child({ worker: 'events' })),
    devices: new RedisDeviceStore(redis, config.sharing.presenceTtlMs),
    transfers: new RedisTransferStore(redis),
    relay: new RelayHub(config.sharing.relayWaitMs),
    federation: await Federation.create({
      store: new RedisFederationStore(redis),
      log: log.child({ component: 'federation' }),
      siteName: config.siteName,
      publicUrl: config.http.publicUrl ?? lanUrl(config.http.port),
      ...config.federation,
    }),
  };
}
