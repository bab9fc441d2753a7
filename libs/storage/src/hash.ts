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
 * A SHA-256 for an upload hashed whole in one go (`Library.stage`: REST, FTP STOR): Node's own, on
 * the thread that receives and writes the bytes (see `ResumableHashes.openPlain` for why).
 */
export function openUploadHash(log: Logger): Promise<ResumableHash> {
  return processHashes(log).openPlain();
}

/**
 * Hashes and writes one chunk at the same time (both only read it). Settles once both are done
 * with it, failing with the first failure, so that a lent chunk (an upload body's batch, read into
 * again once the next is asked for) is never read after this settles.
 */
export async function hashAndWrite(hash: ResumableHash, write: (chunk: Buffer) => Promise<void>, chunk: Buffer): Promise<void> {
  const [hashed, written] = await Promise.allSettled([hash.update(chunk), write(chunk)]);
  if (hashed.status === 'rejected') throw hashed.reason;
  if (written.status === 'rejected') throw written.reason;
}
