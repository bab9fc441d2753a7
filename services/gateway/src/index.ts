export { buildGateway } from './app.js';
export { createGatewayDeps, type GatewayDeps } from './deps.js';
export { startGateway, type RunningGateway } from './start.js';
export { CatalogClient, type CatalogApi } from './catalog-client.js';
