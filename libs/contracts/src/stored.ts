import type { Item } from './library.js';

/**
 * An item as kept in Redis and shared by every service: the public item plus the key of the blob
 * object holding its bytes. The blob key never leaves the server.
 */
export type StoredItem = Item & { blobKey: string };

/** Strips the internal blob key from a stored item. */
export function publicItem(item: StoredItem): Item {
  const { blobKey: _blobKey, ...rest } = item;
  return rest;
}
