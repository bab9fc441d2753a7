import { badInput } from '@nondivy/errors';
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

/** A position in the newest-first listing: the last item's creation score and id. */
export interface ListCursor {
  score: number;
  id: string;
}

/** Cursors are opaque to clients: base64url JSON of the last item's position. */
export function encodeCursor(c: ListCursor): string {
  return Buffer.from(JSON.stringify([c.score, c.id])).toString('base64url');
}

/** Decodes a cursor from a client; anything forged or damaged is a `bad_input`. */
export function decodeCursor(raw: string): ListCursor {
  try {
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string' && /^[A-Za-z0-9_-]{22}$/.test(v[1])) {
      return { score: v[0] as number, id: v[1] };
    }
  } catch {
    /* fall through */
  }
  throw badInput('Invalid cursor');
}
