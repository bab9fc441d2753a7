import type { OfferLimits } from '@nondivy/config';
import { tooLarge } from '@nondivy/errors';

/**
 * Refuses an offer too big to keep: its file list is stored, listed to the receiver and sent to
 * linked sites whole, so both its length and its size are bounded.
 */
export function checkOfferSize(files: { name: string }[], limits: Pick<OfferLimits, 'maxFiles' | 'maxBytes'>): void {
  if (files.length > limits.maxFiles) throw tooLarge(`An offer may hold at most ${limits.maxFiles} files (this one has ${files.length}): send them in several offers`);
  const bytes = Buffer.byteLength(JSON.stringify(files));
  if (bytes > limits.maxBytes) throw tooLarge(`An offer's file list may take at most ${limits.maxBytes} bytes (this one takes ${bytes}): send the files in several offers`);
}

/** The caps on open offers in the shape the transfer store checks atomically when it records one. */
export const pendingCaps = (limits: Pick<OfferLimits, 'maxPendingPerSender' | 'maxPendingPerReceiver'>) => ({
  maxSent: limits.maxPendingPerSender,
  maxReceived: limits.maxPendingPerReceiver,
});
