export { startDiscovery, ensureSiteId, type RunningDiscovery } from './start.js';
export { announce, lanAddress, lanInterfaces, type Announcement } from './announce.js';
