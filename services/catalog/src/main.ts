import { loadCatalogConfig } from '@nondivy/config';
import { runService } from '@nondivy/runtime';
import { startCatalog } from './start.js';

/** The catalog as its own process (Docker Compose): REDIS_URL is required. */
runService('catalog', () => loadCatalogConfig(), startCatalog);
