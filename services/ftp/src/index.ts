export { startFtpService, type RunningFtp } from './start.js';
export { startFtp, type FtpFrontDoor, type FtpDeps } from './server.js';
export { resolvePath, type VirtualPath } from './paths.js';
