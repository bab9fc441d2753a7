import type { Redis } from 'ioredis';
import type { Item, StoredItem } from '@nondivy/contracts';
import { titleSortKey, titleSortText } from '@nondivy/search';
import { keys } from './keys.js';

/**
 * How an item is laid out in its Redis hash (`nd:item:<id>`), shared by the library state (which
 * writes items) and the search index (which reads pages of them): strings as they are, arrays and
 * maps as JSON, numbers as decimal strings. Internal to libs/state.
 */

/** An item's hash fields as a flat [field, value, …] list, with the title's sort key. */
export function toFields(item: StoredItem): string[] {
  return [
    'id', item.id,
    'title', item.title,
    'kind', item.kind,
    'folder', item.folder ?? '',
    'tags', JSON.stringify(item.tags),
    'description', item.description,
    'filename', item.filename,
    'contentType', item.contentType,
    'size', String(item.size),
    'sha256', item.sha256,
    'blobKey', item.blobKey,
    'createdAt', item.createdAt,
    'updatedAt', item.updatedAt,
    'modifiedAt', item.modifiedAt ?? '',
    'uploadedBy', item.uploadedBy,
    'downloads', String(item.downloads),
    'meta', JSON.stringify(item.meta),
    'titleKey', String(titleSortKey(item.title)),
    'titleSort', titleSortText(item.title),
  ];
}

// `name` is the item's path name, kept by the search index (see search-index.ts): read with the item, as its `path`.
const ITEM_FIELDS = ['id', 'title', 'kind', 'folder', 'tags', 'description', 'filename', 'contentType', 'size', 'sha256', 'blobKey', 'createdAt', 'updatedAt', 'modifiedAt', 'uploadedBy', 'downloads', 'meta', 'name'] as const;

/** The item in a hash as read back, or null when the hash is not a whole item. */
export function fromHash(h: Record<string, string>): StoredItem | null {
  if (!h.id || !h.sha256) return null;
  return {
    id: h.id,
    title: h.title ?? '',
    kind: (h.kind ?? 'other') as Item['kind'],
    // Items from before folders sit at their kind's root.
    folder: h.folder ?? '',
    tags: JSON.parse(h.tags ?? '[]') as string[],
    description: h.description ?? '',
    filename: h.filename ?? '',
    contentType: h.contentType ?? 'application/octet-stream',
    size: Number(h.size ?? 0),
    sha256: h.sha256,
    blobKey: h.blobKey ?? '',
    createdAt: h.createdAt ?? new Date(0).toISOString(),
    updatedAt: h.updatedAt ?? h.createdAt ?? new Date(0).toISOString(),
    // An empty field (as a new item is written) means not set.
    modifiedAt: h.modifiedAt || null,
    uploadedBy: h.uploadedBy ?? '',
    downloads: Number(h.downloads ?? 0),
    meta: JSON.parse(h.meta ?? '{}') as Item['meta'],
    ...(h.name ? { path: itemPath(h.kind ?? 'other', h.folder ?? '', h.name) } : {}),
  };
}

/** One item by id, or null. */
export async function readItem(redis: Redis, id: string): Promise<StoredItem | null> {
  return fromHash(await redis.hgetall(keys.item(id)));
}

/** Several items in one round trip, in the order asked, skipping those that no longer exist. */
export async function readItems(redis: Redis, ids: string[]): Promise<StoredItem[]> {
  if (ids.length === 0) return [];
  // Only the item's own fields: not its index terms, which can be long.
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hmget(keys.item(id), ...ITEM_FIELDS);
  const results = (await pipe.exec()) ?? [];
  const items: StoredItem[] = [];
  for (const [err, values] of results) {
    if (err) throw err;
    const h: Record<string, string> = {};
    (values as (string | null)[]).forEach((v, i) => {
      if (v !== null) h[ITEM_FIELDS[i]!] = v;
    });
    const item = fromHash(h);
    if (item) items.push(item);
  }
  return items;
}

/** The tags of several items (JSON in their hashes), for counting facets; missing items have none. */
export async function readTags(redis: Redis, ids: string[]): Promise<string[][]> {
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hget(keys.item(id), 'tags');
  return ((await pipe.exec()) ?? []).map(([err, tags]) => {
    if (err) throw err;
    return JSON.parse((tags as string | null) ?? '[]') as string[];
  });
}

/** An item's FTP location from its kind, folder and path name: what REST shows as `path`. */
export function itemPath(kind: string, folder: string, name: string): string {
  return `/library/${kind}/${folder === '' ? '' : `${folder}/`}${name}`;
}
