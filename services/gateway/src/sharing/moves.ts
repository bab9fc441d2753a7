import type { TransferState } from '@nondivy/contracts';

/**
 * Who may move a transfer where. The store (libs/state) makes each move atomically and refuses it
 * when the transfer is not in one of `from`; these tables decide which moves a party may ask for at
 * all. Kept as data so the rules can be read (and checked) in one place.
 */

/** A device's part in a transfer. */
export type Role = 'sender' | 'receiver';

/** A state move: the states it leaves, and the one it reaches. */
export interface Move {
  from: TransferState[];
  to: TransferState;
}

/** A move a device of this site asks for: `by` names the only role allowed, and what the other hears. */
export interface LocalMove extends Move {
  by?: { role: Role; refusal: string };
}

export type LocalMoveName = 'accept' | 'reject' | 'cancel' | 'complete' | 'fail';

/** The moves devices of this site make through the API. */
export const LOCAL_MOVES: Record<LocalMoveName, LocalMove> = {
  accept: { from: ['offered'], to: 'accepted', by: { role: 'receiver', refusal: 'Only the receiving device can accept' } },
  reject: { from: ['offered'], to: 'rejected', by: { role: 'receiver', refusal: 'Only the receiving device can reject' } },
  /** Either device may withdraw, before or after acceptance. */
  cancel: { from: ['offered', 'accepted'], to: 'cancelled' },
  /** Only the receiver has the bytes to verify. */
  complete: { from: ['accepted'], to: 'completed', by: { role: 'receiver', refusal: 'Only the receiving device confirms delivery' } },
  fail: { from: ['offered', 'accepted'], to: 'failed' },
};

/** The gateway's own move when relayed bytes did not get through. */
export const RELAY_FAILED: Move = { from: ['accepted'], to: 'failed' };

/**
 * What a linked site may change depends on its side of the transfer: the receiving side answers
 * the offer and confirms delivery; the sending side can only give up. A state absent here is
 * refused (a sending site cannot accept for our receiver).
 */
export const SITE_MOVES: Record<Role, Partial<Record<TransferState, TransferState[]>>> = {
  receiver: { accepted: ['offered'], rejected: ['offered'], expired: ['offered'], cancelled: ['offered', 'accepted'], completed: ['accepted'], failed: ['offered', 'accepted'] },
  sender: { expired: ['offered'], cancelled: ['offered', 'accepted'], failed: ['offered', 'accepted'] },
};
