import type { FtpConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import { createAuthService, createLibrary, createResumableUploads, waitForBlobStore } from '@nondivy/runtime';
import { type Redis, waitForRedis } from '@nondivy/state';
import { createBlobStore } from '@nondivy/storage';
import { startFtp, type FtpFrontDoor } from './server.js';

export interface RunningFtp {
  ftp: FtpFrontDoor;
  close(): Promise<void>;
}

/**
 * Starts the FTP front door on an open Redis connection: waits for Redis and the blob store, opens
 * the same library as the gateway (same Redis state, same blob store) and the same resumable uploads
 * (an interrupted STOR is kept as one, under the gateway's limits), sweeps abandoned uploads, listens.
 */
export async function startFtpService(config: FtpConfig, log: Logger, redis: Redis): Promise<RunningFtp> {
  await waitForRedis(redis, log);
  const blobs = await createBlobStore(config.blobs, log);
  await waitForBlobStore(blobs, log);
  const library = createLibrary({ redis, blobs, log, ...config.library });
  const auth = createAuthService(redis, config.auth);
  const uploads = createResumableUploads({ redis, library, log, ...config.uploads });
  const stopSweeper = library.startSweeper();
  const stopUploadSweeper = uploads.startSweeper();
  const ftp = await startFtp({ ...config.ftp, maxUploadBytes: config.library.maxUploadBytes, siteName: config.siteName }, { library, uploads, auth, log });
  return {
    ftp,
    close: async () => {
      stopSweeper();
      stopUploadSweeper();
      // The sessions' transfers keep what they received (a checkpoint) before this resolves.
      await ftp.close();
      await uploads.close();
      await blobs.close();
    },
  };
}
