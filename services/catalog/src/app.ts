import { randomBytes } from 'node:crypto';
import type { CatalogConfig } from '@nondivy/config';
import { Facets, Item, ItemId, ItemList, publicItem, SearchQuery } from '@nondivy/contracts';
import { CatalogSearch } from './search.js';
import { notFound } from '@nondivy/errors';
import { notFoundHandler, observability, problemClientErrorHandler, problemErrorHandler, problemFrameworkErrors, RequestLogsAtDebug } from '@nondivy/http';
import type { Logger } from '@nondivy/log';
import { RedisLibraryState, redisReady, type Redis } from '@nondivy/state';
import type { BlobStore } from '@nondivy/storage';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

export interface CatalogDeps {
  log: Logger;
  redis: Redis;
  blobs: BlobStore;
}

/**
 * Builds the catalog service (internal HTTP) without listening. It owns the search index over the
 * library's item store in Redis and answers searches, browsing and facets for the gateway.
 */
export async function buildCatalog(_config: CatalogConfig, deps: CatalogDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomBytes(8).toString('hex'),
    // As the gateway: requests logged at debug, malformed ones answered with problem documents.
    logController: new RequestLogsAtDebug(),
    clientErrorHandler: problemClientErrorHandler,
    frameworkErrors: problemFrameworkErrors,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(problemErrorHandler);
  app.setNotFoundHandler(notFoundHandler);
  await app.register(observability, {
    service: 'catalog',
    checks: {
      redis: async () => {
        if (!(await redisReady(deps.redis))) throw new Error('redis does not answer');
      },
      blobs: () => deps.blobs.ready(),
    },
  });

  const items = new RedisLibraryState(deps.redis);
  const search = new CatalogSearch(deps.redis);
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get('/internal/v1/search', { schema: { querystring: SearchQuery, response: { 200: ItemList } } }, async (req) => search.search(req.query));
  api.get('/internal/v1/facets', { schema: { querystring: SearchQuery, response: { 200: Facets } } }, async (req) => search.facets(req.query));
  api.get('/internal/v1/items/:id', { schema: { params: z.object({ id: ItemId }), response: { 200: Item } } }, async (req) => {
    const item = await items.getItem(req.params.id);
    if (!item) throw notFound('No such item');
    return publicItem(item);
  });
  return app;
}
