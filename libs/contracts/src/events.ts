import { z } from 'zod';
import { ItemId } from './library.js';

/**
 * Library change events, appended to a Redis Stream in the same transaction as the change itself,
 * so a consumer (search index, live events) never misses a committed change nor sees an uncommitted one.
 */
export const LibraryEvent = z.object({
  type: z.enum(['item.created', 'item.updated', 'item.deleted']),
  id: ItemId,
  at: z.iso.datetime(),
});
export type LibraryEvent = z.infer<typeof LibraryEvent>;
