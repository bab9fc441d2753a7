/**
 * The relay's byte counter, kept apart from the streams so its rule can be tested alone: a sender's
 * length is never trusted, so every chunk is measured against what the offer still has room for.
 */
export interface Admitted {
  /** Bytes of the chunk that may be written to the receiver (all of it unless `over`). */
  write: number;
  /** The chunk goes past the offered size: the rest is dropped and the relay fails. */
  over: boolean;
}

/** How much of a `length`-byte chunk may follow `sent` bytes already relayed, for an offer of `size`. */
export function admitChunk(sent: number, length: number, size: number): Admitted {
  const room = size - sent;
  if (length > room) return { write: Math.max(room, 0), over: true };
  return { write: length, over: false };
}

/** True when a sender's body that ended after `sent` bytes was exactly the offer. */
export const endedExactly = (sent: number, size: number): boolean => sent === size;
