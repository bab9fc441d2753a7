export { startDiscovery, type RunningDiscovery } from './start.js';
export { announce, lanAddress, lanInterfaces, serviceRecords, type Announcement, type ServiceRecord } from './announce.js';
export { CONFLICT_SUFFIX_BYTES, instanceName, MAX_LABEL_BYTES } from './instance-name.js';
export { announceAddress, chooseAnnounceInterfaces, isVirtualInterface, VIRTUAL_INTERFACE_PREFIXES, type InterfaceChoice, type InterfaceTable } from './interfaces.js';
