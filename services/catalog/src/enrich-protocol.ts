/**
 * Messages between the catalog's main thread and its enrichment worker thread. The worker has no
 * blob store of its own: it asks the main thread for a blob's bytes and pulls them one chunk at a
 * time (so a long file never piles up in either thread's memory), and the main thread's store stays
 * the only one — its connections, its errors, and its faults as tests inject them.
 */
import type { Item } from '@nondivy/contracts';
import type { ErrorKind } from '@nondivy/errors';
import type { ByteRange } from '@nondivy/storage';
import type { Extracted } from './extractors.js';

/** An error across the thread boundary: the message, and the AppError kind when it had one. */
export interface WireError {
  message: string;
  kind?: ErrorKind;
}

export type ToWorker =
  | { type: 'job'; job: number; key: string; item: Item }
  /** The answer to `open`: the stream is ready to be pulled, or the store refused. */
  | { type: 'opened'; req: number; error?: WireError }
  /** The answer to `pull`: the next bytes; neither `data` nor `error` means the end. */
  | { type: 'chunk'; req: number; data?: Uint8Array; error?: WireError };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'open'; req: number; key: string; range?: ByteRange }
  | { type: 'pull'; req: number }
  | { type: 'close'; req: number }
  | { type: 'done'; job: number; result: Extracted }
  | { type: 'failed'; job: number; error: WireError };
