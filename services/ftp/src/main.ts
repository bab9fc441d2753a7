import { loadFtpConfig } from '@nondivy/config';
import { runService } from '@nondivy/runtime';
import { startFtpService } from './start.js';

/** The FTP front door as its own process (Docker Compose): REDIS_URL is required. */
runService('ftp', () => loadFtpConfig(), startFtpService);
