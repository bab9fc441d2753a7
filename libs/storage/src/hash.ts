import type { Logger } from '@nondivy/log';
import { ResumableHashes, type ResumableHash } from './resumable-hash.js';

/** The hash threads of whole uploads, shared by every Library of the process (started on first use). */
let shared: ResumableHashes | null = null;

/**
 * A SHA-256 for an upload hashed whole in one go (`Library.stage`: REST, FTP STOR): Node's own, on a
 * hash thread fed with reused batches, so that hashing runs beside the thread that receives and
 * writes the bytes rather than on it; inline when no thread can start.
 */
export function openUploadHash(log: Logger): Promise<ResumableHash> {
  shared ??= new ResumableHashes(log);
  return shared.openPlain();
}
