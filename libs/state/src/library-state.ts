import type { Redis } from 'ioredis';
import type { StoredItem } from '@nondivy/contracts';
import { notFound } from '@nondivy/errors';
import { titleSortKey } from '@nondivy/search';
import { keys, LIBRARY_EVENTS_MAXLEN } from './keys.js';
import { fromHash, itemPath, readItem, readItems, toFields } from './item-hash.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';
import { indexTermsOf as termsOf, INDEX_LUA, RedisSearchIndex } from './search-index.js';

/** What an expired upload left behind, for the sweeper to discard. */
export interface ExpiredUpload {
  leaseId: string;
  token: string | null;
}

// KEYS: uploads, uploadTokens, blob:<sha>, item:<id>, itemsByCreated, libraryEvents, blobTrash, itemsByOwner
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
redis.call('ZADD', KEYS[8], ARGV[4], id)
ix_add(ARGV[7], id, KEYS[4], ARGV[8])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*', 'type', 'item.created', 'id', id, 'at', redis.call('HGET', KEYS[4], 'createdAt'))
return {blobKey, deduped, redis.call('HGET', KEYS[4], 'name') or ''}
`);

// KEYS: item:<id>, itemsByCreated, libraryEvents, blobTrash
// ARGV: blobPrefix, nowMs, atIso, maxlen, index prefix, itemsByOwner prefix (the uploader is read from the item)
// Returns nil when the item does not exist, else {blobKey, lastReference(0|1)}.
const DELETE_ITEM = new LuaScript(INDEX_LUA + `
local sha = redis.call('HGET', KEYS[1], 'sha256')
if not sha then return nil end
local id = redis.call('HGET', KEYS[1], 'id')
local blobKey = redis.call('HGET', KEYS[1], 'blobKey')
local owner = redis.call('HGET', KEYS[1], 'uploadedBy')
if owner then redis.call('ZREM', ARGV[6] .. owner, id) end
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

/**
 * The library's state in Redis: items, the content-address registry with reference counts, upload
 * leases and the blob trash. Every change that must be atomic (commit an upload, delete an item) is
 * one Lua script, so readers never see an item without its bytes, nor bytes counted twice. Those
 * scripts update the search index with search-index.ts's INDEX_LUA; path names are read there too.
 */
export class RedisLibraryState {
  private readonly index: RedisSearchIndex;

  constructor(private readonly redis: Redis) {
    this.index = new RedisSearchIndex(redis);
  }

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
  commitUpload(input: { leaseId: string; candidateKey: string; item: Omit<StoredItem, 'blobKey'> }): Promise<{ blobKey: string; deduped: boolean; path?: string }> {
    const { item } = input;
    const fields = toFields({ ...item, blobKey: input.candidateKey });
    return withRedis(async () => {
      const [blobKey, deduped, name] = (await COMMIT_UPLOAD.run(this.redis, 8,
        keys.uploads,
        keys.uploadTokens,
        keys.blob(item.sha256),
        keys.item(item.id),
        keys.itemsByCreated,
        keys.libraryEvents,
        keys.blobTrash,
        keys.itemsByOwner(item.uploadedBy),
        input.leaseId,
        input.candidateKey,
        String(item.size),
        String(Date.parse(item.createdAt)),
        String(LIBRARY_EVENTS_MAXLEN),
        JSON.stringify(fields),
        keys.indexPrefix,
        termsOf(item),
      )) as [string, number, string];
      return { blobKey, deduped: deduped === 1, ...(name ? { path: itemPath(item.kind, name) } : {}) };
    });
  }

  getItem(id: string): Promise<StoredItem | null> {
    return withRedis(() => readItem(this.redis, id));
  }

  /** Several items in one round trip, in the order asked, skipping those that no longer exist. */
  getItems(ids: string[]): Promise<StoredItem[]> {
    return withRedis(() => readItems(this.redis, ids));
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

  /** The latest `limit` items `username` uploaded, newest first. */
  itemsBy(username: string, limit: number): Promise<StoredItem[]> {
    return withRedis(async () => readItems(this.redis, await this.redis.zrevrange(keys.itemsByOwner(username), 0, limit - 1)));
  }

  /** The item named `name` in `kind`'s folder (path names are kept by the search index), or null. */
  findByName(kind: string, name: string): Promise<StoredItem | null> {
    return this.index.findByName(kind, name);
  }

  /** One page of `kind`'s folder (see `RedisSearchIndex.scanNames`). */
  scanNames(kind: string, cursor: string, count = 500): Promise<{ cursor: string; entries: { name: string; item: StoredItem }[] }> {
    return this.index.scanNames(kind, cursor, count);
  }

  /** The path name of an item in its kind's folder (null when it has none yet: not indexed). */
  nameOf(id: string): Promise<string | null> {
    return this.index.nameOf(id);
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
        keys.itemsByOwnerPrefix,
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
