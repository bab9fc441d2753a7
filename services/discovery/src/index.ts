export { startDiscovery, type RunningDiscovery } from './start.js';
export { announce, lanAddress, lanInterfaces, type Announcement } from './announce.js';
export { announceAddress, chooseAnnounceInterfaces, isVirtualInterface, VIRTUAL_INTERFACE_PREFIXES, type InterfaceChoice, type InterfaceTable } from './interfaces.js';
