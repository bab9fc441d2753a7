import type { CatalogConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import { RedisSearchIndex, type Redis, waitForRedis } from '@nondivy/state';
import { createBlobStore } from '@nondivy/storage';
import type { FastifyInstance } from 'fastify';
import { buildCatalog } from './app.js';
import { EnrichmentWorker } from './enrichment.js';

export interface RunningCatalog {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** Waits for Redis, rebuilds a search index built by older rules, opens the blob store, starts the enrichment worker, builds and listens. */
export async function startCatalog(config: CatalogConfig, log: Logger, redis: Redis): Promise<RunningCatalog> {
  await waitForRedis(redis, log);
  await new RedisSearchIndex(redis).upgrade(log);
  const blobs = await createBlobStore(config.blobs, log);
  const worker = new EnrichmentWorker({ redis, blobs, log: log.child({ worker: 'enrichment' }) });
  worker.start();
  const app = await buildCatalog(config, { log, redis, blobs });
  await app.listen({ host: config.http.host, port: config.http.port });
  const port = (app.server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}`;
  log.info({ url }, 'catalog listening');
  return {
    app,
    url,
    close: async () => {
      await app.close();
      await worker.stop();
      await blobs.close();
    },
  };
}
