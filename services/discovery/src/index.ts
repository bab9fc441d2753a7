export { startDiscovery, ensureSiteId, type RunningDiscovery } from './start.js';
export { announce, lanAddress, type Announcement } from './announce.js';
