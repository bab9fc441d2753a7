export { buildCatalog, type CatalogDeps } from './app.js';
export { startCatalog, type RunningCatalog } from './start.js';
export { CatalogSearch } from './search.js';
export { EnrichmentWorker, type EnrichmentOptions } from './enrichment.js';
