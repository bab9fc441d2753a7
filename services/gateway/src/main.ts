import { loadGatewayConfig } from '@nondivy/config';
import { runService } from '@nondivy/runtime';
import { startGateway } from './start.js';

/** The gateway as its own process (Docker Compose): REDIS_URL is required. */
runService('gateway', () => loadGatewayConfig(), startGateway);
