import { loadDiscoveryConfig } from '@nondivy/config';
import { runService } from '@nondivy/runtime';
import { startDiscovery } from './start.js';

/** The discovery service as its own process (Docker Compose, host network): REDIS_URL is required. */
runService('discovery', () => loadDiscoveryConfig(), startDiscovery);
