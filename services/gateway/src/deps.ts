import type { AuthService } from '@nondivy/auth';
import type { GatewayConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import { createAuthService, createLibrary, createResumableUploads } from '@nondivy/runtime';
import { RedisDeviceStore, RedisFederationStore, RedisTransferStore, type Redis } from '@nondivy/state';
import { RelayHub } from './relay.js';
import { Federation } from './federation.js';
import { lanUrl } from './lan-url.js';
import { createBlobStore, type BlobStore, type Library, type ResumableUploads } from '@nondivy/storage';
import { type CatalogApi, CatalogClient } from './catalog-client.js';
import { EventHub } from './event-hub.js';
import { RemoteTransfers } from './sharing/remote-transfers.js';
import { Sharing } from './sharing/sharing.js';

/** What the gateway is built from: real clients in production, the same real clients in tests. */
export interface GatewayDeps {
  log: Logger;
  redis: Redis;
  blobs: BlobStore;
  library: Library;
  /** Resumable (tus) uploads over the library: state in Redis, bytes in the blob store's staging area. */
  uploads: ResumableUploads;
  auth: AuthService;
  catalog: CatalogApi;
  events: EventHub;
  devices: RedisDeviceStore;
  transfers: RedisTransferStore;
  relay: RelayHub;
  federation: Federation;
  /** Device sharing's rules (offers, state moves, relay, linked sites' devices): the routes call these. */
  sharing: Sharing;
}

/** Wires the gateway's dependencies from its configuration and an open Redis connection. */
export async function createGatewayDeps(config: GatewayConfig, log: Logger, redis: Redis, options: { blobs?: BlobStore; catalog?: CatalogApi } = {}): Promise<GatewayDeps> {
  const blobs = options.blobs ?? (await createBlobStore(config.blobs, log));
  const library = createLibrary({ redis, blobs, log, ...config.library });
  const uploads = createResumableUploads({ redis, library, log, ...config.uploads });
  const auth = createAuthService(redis, config.auth);
  const devices = new RedisDeviceStore(redis, config.sharing.presenceTtlMs);
  const transfers = new RedisTransferStore(redis);
  const relay = new RelayHub(config.sharing.relayWaitMs);
  const federation = await Federation.create({
    store: new RedisFederationStore(redis),
    log: log.child({ component: 'federation' }),
    siteName: config.siteName,
    publicUrl: config.http.publicUrl ?? lanUrl(config.http.port),
    ...config.federation,
  });
  const sharing = new Sharing({
    devices,
    transfers,
    relay,
    remote: new RemoteTransfers(federation, transfers, log.child({ component: 'federation' })),
    federation,
    log: log.child({ component: 'sharing' }),
    offerTtlMs: config.sharing.offerTtlMs,
    limits: config.sharing.offers,
  });
  return { log, redis, blobs, library, uploads, auth, catalog: options.catalog ?? new CatalogClient(config.catalogUrl), events: new EventHub(redis, log.child({ worker: 'events' })),
    devices, transfers, relay, federation, sharing };
}
