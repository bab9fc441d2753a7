import type { Redis } from 'ioredis';
import type { Item, StoredItem } from '@nondivy/contracts';
import { notFound } from '@nondivy/errors';
import { type IndexableItem, termScore, termWeights, titleSortKey } from '@nondivy/search';
import { keys, LIBRARY_EVENTS_MAXLEN } from './keys.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';


/** What an expired upload left behind, for the sweeper to discard. */
export interface ExpiredUpload {
  leaseId: string;
  token: string | null;
}

// Item hash fields. Strings as they are; arrays and maps as JSON; numbers as decimal strings.
function toFields(item: StoredItem): string[] {
  return [
    'id', item.id,
    'title', item.title,
    'kind', item.kind,
    'tags', JSON.stringify(item.tags),
    'description', item.description,
    'filename', item.filename,
    'contentType', item.contentType,
    'size', String(item.size),
    'sha256', item.sha256,
    'blobKey', item.blobKey,
    'createdAt', item.createdAt,
    'updatedAt', item.updatedAt,
    'uploadedBy', item.uploadedBy,
    'downloads', String(item.downloads),
    'meta', JSON.stringify(item.meta),
    'titleKey', String(titleSortKey(item.title)),
  ];
}

/** The item's index terms as the scripts store them: JSON [[term, score], ...] (see termScore). */
const termsOf = (item: IndexableItem & { createdAt: string }) => {
  const created = Date.parse(item.createdAt);
  return JSON.stringify([...termWeights(item)].map(([term, weight]) => [term, termScore(weight, created)]));
};

const ITEM_FIELDS = ['id', 'title', 'kind', 'tags', 'description', 'filename', 'contentType', 'size', 'sha256', 'blobKey', 'createdAt', 'updatedAt', 'uploadedBy', 'downloads', 'meta'] as const;

function fromHash(h: Record<string, string>): StoredItem | null {
  if (!h.id || !h.sha256) return null;
  return {
    id: h.id,
    title: h.title ?? '',
    kind: (h.kind ?? 'other') as Item['kind'],
    tags: JSON.parse(h.tags ?? '[]') as string[],
    description: h.description ?? '',
    filename: h.filename ?? '',
    contentType: h.contentType ?? 'application/octet-stream',
    size: Number(h.size ?? 0),
    sha256: h.sha256,
    blobKey: h.blobKey ?? '',
    createdAt: h.createdAt ?? new Date(0).toISOString(),
    updatedAt: h.updatedAt ?? h.createdAt ?? new Date(0).toISOString(),
    uploadedBy: h.uploadedBy ?? '',
    downloads: Number(h.downloads ?? 0),
    meta: JSON.parse(h.meta ?? '{}') as Item['meta'],
  };
}

// Index maintenance shared by the scripts below, run inside the same script as the item change, so
// search never shows a deleted item nor misses a committed one. P is the index key prefix. An item
// is indexed when its hash has `terms` (JSON [[term, score], ...], computed with libs/search).
//
// Path names: every item has a name unique within its kind (P .. 'name:' .. kind, a hash name → id),
// which is its file name when free, else the name with the start of its id added before the
// extension. The item keeps its name (fields name, nameFor) for as long as its kind and file name
// stay the same, across re-indexing and rebuilds, so a name once shown keeps meaning the same item.
const INDEX_LUA = `
local function nm_release(P, id, itemKey)
  local prev = redis.call('HGET', itemKey, 'name')
  local prevFor = redis.call('HGET', itemKey, 'nameFor')
  if prev and prevFor then
    local map = P .. 'name:' .. string.match(prevFor, '^[^/]*')
    if redis.call('HGET', map, prev) == id then redis.call('HDEL', map, prev) end
  end
end
local function nm_assign(P, id, itemKey)
  local kind = redis.call('HGET', itemKey, 'kind')
  local fname = redis.call('HGET', itemKey, 'filename')
  local want = kind .. '/' .. fname
  local map = P .. 'name:' .. kind
  local prev = redis.call('HGET', itemKey, 'name')
  if prev and redis.call('HGET', itemKey, 'nameFor') == want then
    local holder = redis.call('HGET', map, prev)
    if holder == id then return end
    if not holder then redis.call('HSET', map, prev, id) return end
  end
  nm_release(P, id, itemKey)
  local stem, ext = string.match(fname, '^(.+)(%.[^.]+)$')
  if not stem then stem = fname; ext = '' end
  local candidates = {fname, stem .. ' (' .. string.sub(id, 1, 6) .. ')' .. ext, stem .. ' (' .. id .. ')' .. ext}
  for _, c in ipairs(candidates) do
    if redis.call('HSETNX', map, c, id) == 1 then
      redis.call('HSET', itemKey, 'name', c, 'nameFor', want)
      return
    end
  end
end
local function ix_remove(P, id, itemKey)
  local terms = redis.call('HGET', itemKey, 'terms')
  if not terms then return end
  for _, tw in ipairs(cjson.decode(terms)) do
    local k = P .. 't:' .. tw[1]
    redis.call('ZREM', k, id)
    if redis.call('ZCARD', k) == 0 then redis.call('ZREM', P .. 'terms', tw[1]) end
  end
  local kind = redis.call('HGET', itemKey, 'kind')
  redis.call('ZREM', P .. 'kind:' .. kind, id)
  if redis.call('HINCRBY', P .. 'facet:kind', kind, -1) <= 0 then redis.call('HDEL', P .. 'facet:kind', kind) end
  for _, t in ipairs(cjson.decode(redis.call('HGET', itemKey, 'tags') or '[]')) do
    redis.call('ZREM', P .. 'tag:' .. t, id)
    if tonumber(redis.call('ZINCRBY', P .. 'facet:tags', -1, t)) <= 0 then redis.call('ZREM', P .. 'facet:tags', t) end
  end
  redis.call('ZREM', P .. 'size', id)
  redis.call('ZREM', P .. 'title', id)
  redis.call('ZREM', P .. 'popular', id)
  redis.call('HDEL', itemKey, 'terms')
  redis.call('INCR', P .. 'gen')
end
local function ix_add(P, id, itemKey, terms)
  for _, tw in ipairs(cjson.decode(terms)) do
    redis.call('ZADD', P .. 't:' .. tw[1], tw[2], id)
    redis.call('ZADD', P .. 'terms', 0, tw[1])
  end
  local kind = redis.call('HGET', itemKey, 'kind')
  redis.call('ZADD', P .. 'kind:' .. kind, 0, id)
  redis.call('HINCRBY', P .. 'facet:kind', kind, 1)
  for _, t in ipairs(cjson.decode(redis.call('HGET', itemKey, 'tags') or '[]')) do
    redis.call('ZADD', P .. 'tag:' .. t, 0, id)
    redis.call('ZINCRBY', P .. 'facet:tags', 1, t)
  end
  redis.call('ZADD', P .. 'size', redis.call('HGET', itemKey, 'size'), id)
  redis.call('ZADD', P .. 'title', redis.call('HGET', itemKey, 'titleKey') or 0, id)
  redis.call('ZADD', P .. 'popular', redis.call('HGET', itemKey, 'downloads') or 0, id)
  redis.call('HSET', itemKey, 'terms', terms)
  redis.call('INCR', P .. 'gen')
  nm_assign(P, id, itemKey)
end
`;

// KEYS: uploads, uploadTokens, blob:<sha>, item:<id>, itemsByCreated, libraryEvents, blobTrash
// ARGV: leaseId, candidateKey, size, createdAtMs, maxlen, item fields (JSON array), index prefix, terms
// Returns {blobKey, deduped}. Fails with LEASE_LOST when the sweeper already took the upload.
const COMMIT_UPLOAD = new LuaScript(INDEX_LUA + `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply('LEASE_LOST upload lease expired')
end
redis.call('HDEL', KEYS[2], ARGV[1])
local blobKey = redis.call('HGET', KEYS[3], 'key')
local deduped = 0
if blobKey then
  redis.call('HINCRBY', KEYS[3], 'refs', 1)
  deduped = 1
  redis.call('ZADD', KEYS[7], ARGV[4], ARGV[2])
else
  blobKey = ARGV[2]
  redis.call('HSET', KEYS[3], 'key', blobKey, 'size', ARGV[3], 'refs', 1)
end
local fields = cjson.decode(ARGV[6])
redis.call('HSET', KEYS[4], unpack(fields))
redis.call('HSET', KEYS[4], 'blobKey', blobKey)
local id = redis.call('HGET', KEYS[4], 'id')
redis.call('HSET', KEYS[3], 'item', id)
redis.call('ZADD', KEYS[5], ARGV[4], id)
ix_add(ARGV[7], id, KEYS[4], ARGV[8])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*', 'type', 'item.created', 'id', id, 'at', redis.call('HGET', KEYS[4], 'createdAt'))
return {blobKey, deduped}
`);

// KEYS: item:<id>, itemsByCreated, libraryEvents, blobTrash
// ARGV: blobPrefix, nowMs, atIso, maxlen, index prefix
// Returns nil when the item does not exist, else {blobKey, lastReference(0|1)}.
const DELETE_ITEM = new LuaScript(INDEX_LUA + `
local sha = redis.call('HGET', KEYS[1], 'sha256')
if not sha then return nil end
local id = redis.call('HGET', KEYS[1], 'id')
local blobKey = redis.call('HGET', KEYS[1], 'blobKey')
ix_remove(ARGV[5], id, KEYS[1])
nm_release(ARGV[5], id, KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'type', 'item.deleted', 'id', id, 'at', ARGV[3])
local bk = ARGV[1] .. sha
local refs = redis.call('HINCRBY', bk, 'refs', -1)
if refs <= 0 then
  redis.call('DEL', bk)
  redis.call('ZADD', KEYS[4], ARGV[2], blobKey)
  return {blobKey, 1}
end
return {blobKey, 0}
`);

// KEYS: item:<id>, libraryEvents   ARGV: atIso, maxlen, fields (JSON array), index prefix, terms,
// expected updatedAt. Terms come from the item as it will be; -1 when it changed since it was read.
const UPDATE_ITEM = new LuaScript(INDEX_LUA + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'updatedAt') ~= ARGV[6] then return -1 end
local id = redis.call('HGET', KEYS[1], 'id')
ix_remove(ARGV[4], id, KEYS[1])
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
ix_add(ARGV[4], id, KEYS[1], ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', 'item.updated', 'id', redis.call('HGET', KEYS[1], 'id'), 'at', ARGV[1])
return 1
`);

// KEYS: item:<id>, popular sort set   Counts a download only for an item that still exists.
const COUNT_DOWNLOAD = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'downloads', 1)
if redis.call('HEXISTS', KEYS[1], 'terms') == 1 then redis.call('ZADD', KEYS[2], n, redis.call('HGET', KEYS[1], 'id')) end
return n
`);

// KEYS: item:<id>   ARGV: index prefix, terms   (Re)indexes one item: used by \`npm run reindex\`.
const REINDEX_ITEM = new LuaScript(INDEX_LUA + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = redis.call('HGET', KEYS[1], 'id')
ix_remove(ARGV[1], id, KEYS[1])
redis.call('HSET', KEYS[1], 'titleKey', ARGV[3])
ix_add(ARGV[1], id, KEYS[1], ARGV[2])
return 1
`);


/**
 * The library's state in Redis: items, the content-address registry with reference counts, upload
 * leases and the blob trash. Every change that must be atomic (commit an upload, delete an item) is
 * one Lua script, so readers never see an item without its bytes, nor bytes counted twice.
 */
export class RedisLibraryState {
  constructor(private readonly redis: Redis) {}

  /** Registers an upload in progress; it expires (and gets swept) unless renewed. */
  beginUpload(leaseId: string, token: string, ttlMs: number): Promise<void> {
    return withRedis(async () => {
      await this.redis.multi().zadd(keys.uploads, Date.now() + ttlMs, leaseId).hset(keys.uploadTokens, leaseId, token).exec();
    });
  }

  /** Replaces the cleanup token of an upload (e.g. once the S3 multipart upload id is known). */
  setUploadToken(leaseId: string, token: string): Promise<void> {
    return withRedis(async () => {
      await this.redis.hset(keys.uploadTokens, leaseId, token);
    });
  }

  /** Extends an upload's lease; false when it was already swept. */
  renewUpload(leaseId: string, ttlMs: number): Promise<boolean> {
    return withRedis(async () => (await this.redis.zadd(keys.uploads, 'XX', 'CH', Date.now() + ttlMs, leaseId)) === 1);
  }

  /** Forgets an upload whose leftovers were discarded. */
  endUpload(leaseId: string): Promise<void> {
    return withRedis(async () => {
      await this.redis.multi().zrem(keys.uploads, leaseId).hdel(keys.uploadTokens, leaseId).exec();
    });
  }

  /** Uploads whose lease ran out (their process died or hung). */
  expiredUploads(now: number, limit = 100): Promise<ExpiredUpload[]> {
    return withRedis(async () => {
      const ids = await this.redis.zrangebyscore(keys.uploads, '-inf', now, 'LIMIT', 0, limit);
      if (ids.length === 0) return [];
      const tokens = await this.redis.hmget(keys.uploadTokens, ...ids);
      return ids.map((leaseId, i) => ({ leaseId, token: tokens[i] ?? null }));
    });
  }

  /**
   * Commits an upload whose bytes are durable at `candidateKey`: ends the lease, registers the blob
   * (or adds a reference to an equal blob already stored, putting the candidate in the trash), and
   * creates the item with its change event — all in one step.
   */
  commitUpload(input: { leaseId: string; candidateKey: string; item: Omit<StoredItem, 'blobKey'> }): Promise<{ blobKey: string; deduped: boolean }> {
    const { item } = input;
    const fields = toFields({ ...item, blobKey: input.candidateKey });
    return withRedis(async () => {
      const [blobKey, deduped] = (await COMMIT_UPLOAD.run(this.redis, 7,
        keys.uploads,
        keys.uploadTokens,
        keys.blob(item.sha256),
        keys.item(item.id),
        keys.itemsByCreated,
        keys.libraryEvents,
        keys.blobTrash,
        input.leaseId,
        input.candidateKey,
        String(item.size),
        String(Date.parse(item.createdAt)),
        String(LIBRARY_EVENTS_MAXLEN),
        JSON.stringify(fields),
        keys.indexPrefix,
        termsOf(item),
      )) as [string, number];
      return { blobKey, deduped: deduped === 1 };
    });
  }

  getItem(id: string): Promise<StoredItem | null> {
    return withRedis(async () => fromHash(await this.redis.hgetall(keys.item(id))));
  }

  /** Several items in one round trip, in the order asked, skipping those that no longer exist. */
  getItems(ids: string[]): Promise<StoredItem[]> {
    return withRedis(async () => {
      if (ids.length === 0) return [];
      // Only the item's own fields: not its index terms, which can be long.
      const pipe = this.redis.pipeline();
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
    });
  }

  /**
   * Applies a change to an item, re-indexes it and records the event, in one step; false when the
   * item does not exist. The new index terms come from the item as changed; if another change lands
   * between reading and writing, the step is retried on the fresh item.
   */
  async updateItem(id: string, changes: Partial<Omit<StoredItem, 'id' | 'sha256' | 'blobKey' | 'size'>>): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.getItem(id);
      if (!current) return false;
      const at = new Date().toISOString();
      const next = { ...current, ...changes, updatedAt: changes.updatedAt ?? at };
      const fields: string[] = [];
      for (const [k, v] of Object.entries({ ...changes, updatedAt: next.updatedAt, titleKey: titleSortKey(next.title) })) {
        if (v === undefined) continue;
        fields.push(k, typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v));
      }
      const res = await withRedis(async () =>
        UPDATE_ITEM.run(this.redis, 2, keys.item(id), keys.libraryEvents, at, String(LIBRARY_EVENTS_MAXLEN), JSON.stringify(fields), keys.indexPrefix, termsOf(next), current.updatedAt),
      );
      if (res === 1) return true;
      if (res === 0) return false;
    }
    throw new Error('item changed too often while updating');
  }

  /** The item named `name` in `kind`'s folder (see the path names above), or null. */
  findByName(kind: string, name: string): Promise<StoredItem | null> {
    return withRedis(async () => {
      const id = await this.redis.hget(keys.index.names(kind), name);
      return id ? fromHash(await this.redis.hgetall(keys.item(id))) : null;
    });
  }

  /**
   * One page of `kind`'s folder: names with their items, in no particular order. Start with cursor
   * '0'; the listing is complete when the returned cursor is '0' again.
   */
  scanNames(kind: string, cursor: string, count = 500): Promise<{ cursor: string; entries: { name: string; item: StoredItem }[] }> {
    return withRedis(async () => {
      const [next, flat] = await this.redis.hscan(keys.index.names(kind), cursor, 'COUNT', count);
      const names: string[] = [];
      const ids: string[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        names.push(flat[i]!);
        ids.push(flat[i + 1]!);
      }
      const items = await this.getItems(ids);
      const byId = new Map(items.map((it) => [it.id, it]));
      const entries: { name: string; item: StoredItem }[] = [];
      names.forEach((name, i) => {
        const item = byId.get(ids[i]!);
        if (item) entries.push({ name, item });
      });
      return { cursor: next, entries };
    });
  }

  /** The path name of an item in its kind's folder (null when it has none yet: not indexed). */
  nameOf(id: string): Promise<string | null> {
    return withRedis(() => this.redis.hget(keys.item(id), 'name'));
  }

  /** Rebuilds one item's index entries from its stored fields; false when it does not exist. */
  reindexItem(item: StoredItem): Promise<boolean> {
    return withRedis(async () => (await REINDEX_ITEM.run(this.redis, 1, keys.item(item.id), keys.indexPrefix, termsOf(item), String(titleSortKey(item.title)))) === 1);
  }

  /** Deletes every index key (for a rebuild); items are untouched. */
  async dropIndex(): Promise<number> {
    let dropped = 0;
    for await (const batch of this.redis.scanStream({ match: `${keys.indexPrefix}*`, count: 1000 }) as AsyncIterable<string[]>) {
      if (batch.length) dropped += await this.redis.unlink(...batch);
    }
    // Items keep a `terms` field while indexed: clear it so the rebuild does not remove twice.
    for await (const ids of this.redis.zscanStream(keys.itemsByCreated, { count: 1000 }) as AsyncIterable<string[]>) {
      const pipe = this.redis.pipeline();
      for (let i = 0; i < ids.length; i += 2) pipe.hdel(keys.item(ids[i]!), 'terms');
      await pipe.exec();
    }
    return dropped;
  }

  /**
   * Deletes an item and its reference to the blob. When that was the last reference, the blob's
   * object is put in the trash (for the caller to delete now, or the sweeper later).
   */
  deleteItem(id: string): Promise<{ blobKey: string; lastReference: boolean }> {
    return withRedis(async () => {
      const res = (await DELETE_ITEM.run(this.redis, 4,
        keys.item(id),
        keys.itemsByCreated,
        keys.libraryEvents,
        keys.blobTrash,
        keys.blobPrefix,
        String(Date.now()),
        new Date().toISOString(),
        String(LIBRARY_EVENTS_MAXLEN),
        keys.indexPrefix,
      )) as [string, number] | null;
      if (!res) throw notFound('No such item');
      return { blobKey: res[0], lastReference: res[1] === 1 };
    });
  }

  /** Counts one download of an item (for `popular`); no-op when it was deleted meanwhile. */
  countDownload(id: string): Promise<void> {
    return withRedis(async () => {
      await COUNT_DOWNLOAD.run(this.redis, 2, keys.item(id), keys.index.popular);
    });
  }

  /** Blob objects whose deletion is due. */
  dueTrash(now: number, limit = 100): Promise<string[]> {
    return withRedis(() => this.redis.zrangebyscore(keys.blobTrash, '-inf', now, 'LIMIT', 0, limit));
  }

  /** Takes a blob object out of the trash once it is deleted. */
  clearTrash(blobKey: string): Promise<void> {
    return withRedis(async () => {
      await this.redis.zrem(keys.blobTrash, blobKey);
    });
  }

  /** The registry entry of a SHA-256, if any bytes with that hash are stored. */
  blobInfo(sha256: string): Promise<{ key: string; size: number; refs: number } | null> {
    return withRedis(async () => {
      const h = await this.redis.hgetall(keys.blob(sha256));
      return h.key ? { key: h.key, size: Number(h.size), refs: Number(h.refs) } : null;
    });
  }

  /** An item that holds these bytes (the last one committed with them), if it still exists. */
  findBySha256(sha256: string): Promise<StoredItem | null> {
    return withRedis(async () => {
      const id = await this.redis.hget(keys.blob(sha256), 'item');
      if (!id) return null;
      const item = fromHash(await this.redis.hgetall(keys.item(id)));
      return item && item.sha256 === sha256 ? item : null;
    });
  }

  /** Counts: items, pending uploads and trash entries (for metrics and tests). */
  counts(): Promise<{ items: number; uploads: number; trash: number }> {
    return withRedis(async () => {
      const [items, uploads, trash] = await Promise.all([
        this.redis.zcard(keys.itemsByCreated),
        this.redis.zcard(keys.uploads),
        this.redis.zcard(keys.blobTrash),
      ]);
      return { items, uploads, trash };
    });
  }
}
