import type { Logger } from '@nondivy/log';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './blob-store-fs.js';
import { S3BlobStore } from './blob-store-s3.js';

export type BlobStoreConfig =
  | { driver: 'fs'; root: string }
  | { driver: 's3'; endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string; partSize: number };

/** Builds the configured blob store driver. */
export async function createBlobStore(config: BlobStoreConfig, log: Logger): Promise<BlobStore> {
  if (config.driver === 'fs') return new FsBlobStore(config.root);
  return S3BlobStore.create(config, (err) => log.warn({ err: { message: (err as Error).message } }, 'the S3 server could not abort a multipart upload'));
}
