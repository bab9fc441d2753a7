import type { Logger } from '@nondivy/log';
import { ResumableHashes, type ResumableHash } from './resumable-hash.js';

/**
 * The hash threads of the process, shared by every Library and every ResumableUploads that was given
 * none of its own (started on first use; an idle one does not keep the process alive): a standalone
 * server runs the gateway's and the FTP service's uploads on the same threads rather than on a thread
 * (a V8 heap) each.
 */
let shared: ResumableHashes | null = null;

export function processHashes(log: Logger): ResumableHashes {
  shared ??= new ResumableHashes(log);
  return shared;
}

/**
 * A SHA-256 for an upload hashed whole in one go (`Library.stage`: REST, FTP STOR): Node's own, on a
 * hash thread fed with reused batches, so that hashing runs beside the thread that receives and
 * writes the bytes rather than on it; inline when no thread can start.
 */
export function openUploadHash(log: Logger): Promise<ResumableHash> {
  return processHashes(log).openPlain();
}
