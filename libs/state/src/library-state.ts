import type { Redis } from 'ioredis';
import type { StoredItem } from '@nondivy/contracts';
import { conflict, notFound } from '@nondivy/errors';
import { titleSortKey, titleSortText } from '@nondivy/search';
import { keys, LIBRARY_EVENTS_MAXLEN } from './keys.js';
import { fromHash, itemPath, readItem, readItems, toFields } from './item-hash.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';
import { indexTermsOf as termsOf, INDEX_LUA, RedisSearchIndex } from './search-index.js';

/** The refusal of a folder whose way passes through a file's name. */
const folderIsFile = (folder: string) => conflict(`A file has the name of a folder on the way to "${folder}"`);

/** What an expired upload left behind, for the sweeper to discard. */
export interface ExpiredUpload {
  leaseId: string;
  token: string | null;
}

// KEYS: uploads, uploadTokens, blob:<sha>, item:<id>, itemsByCreated, libraryEvents, blobTrash, itemsByOwner
// ARGV: leaseId, candidateKey, size, createdAtMs, maxlen, item fields (JSON array), index prefix, terms
// Returns {blobKey, deduped, path name}. Fails with LEASE_LOST when the sweeper already took the
// upload, and with FOLDER_IS_FILE (before any change) when a folder on the way is the name of a file.
const COMMIT_UPLOAD = new LuaScript(INDEX_LUA + `
local fields = cjson.decode(ARGV[6])
local kind, folder = '', ''
for i = 1, #fields, 2 do
  if fields[i] == 'kind' then kind = fields[i + 1] elseif fields[i] == 'folder' then folder = fields[i + 1] end
end
if not fd_free(ARGV[7], kind, folder) then
  return redis.error_reply('FOLDER_IS_FILE a file has the name of a folder on the way to ' .. folder)
end
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
// expected updatedAt, the item's kind and folder as they will be. Terms come from the item as it will
// be; -1 when it changed since it was read; -2 (before any change) when a folder on the way to its
// new folder is the name of a file.
const UPDATE_ITEM = new LuaScript(INDEX_LUA + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'updatedAt') ~= ARGV[6] then return -1 end
if not fd_free(ARGV[4], ARGV[7], ARGV[8]) then return -2 end
local id = redis.call('HGET', KEYS[1], 'id')
ix_remove(ARGV[4], id, KEYS[1])
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
ix_add(ARGV[4], id, KEYS[1], ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', 'item.updated', 'id', redis.call('HGET', KEYS[1], 'id'), 'at', ARGV[1])
return 1
`);

// KEYS: foldersMade:<kind>   ARGV: index prefix, kind, folder
// 1: made; 0: it exists already; -1: a folder on the way (or it) has the name of a file.
const MAKE_FOLDER = new LuaScript(INDEX_LUA + `
local P, kind, folder = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', P .. 'fh:' .. kind, folder) == 1 then return 0 end
if not fd_free(P, kind, folder) then return -1 end
redis.call('SADD', KEYS[1], folder)
fd_hold(P, kind, folder, 1, 0)
redis.call('INCR', P .. 'gen')
return 1
`);

// KEYS: foldersMade:<kind>   ARGV: index prefix, kind, folder
// 1: removed; 0: no such folder; -1: not empty (it holds items or other folders).
const REMOVE_FOLDER = new LuaScript(INDEX_LUA + `
local P, kind, folder = ARGV[1], ARGV[2], ARGV[3]
local holds = redis.call('HGET', P .. 'fh:' .. kind, folder)
if not holds then return 0 end
if holds ~= '1' or redis.call('SISMEMBER', KEYS[1], folder) == 0 then return -1 end
redis.call('SREM', KEYS[1], folder)
fd_hold(P, kind, folder, -1, 0)
redis.call('INCR', P .. 'gen')
return 1
`);

// KEYS: foldersMade:<kind>, libraryEvents   ARGV: index prefix, kind, from, to, atIso, maxlen, item key prefix
// Moves a folder and everything below it to a new place in the same kind, in one step: the keys of
// each folder below are renamed, every item's folder is rewritten (its path name kept: they were
// unique in their old folders, and the new place is empty), and the folders above the old and new
// places are counted again. Returns {moved items} or {0, why}: 'missing', 'exists', 'file', 'inside'.
const MOVE_FOLDER = new LuaScript(INDEX_LUA + `
local P, kind, from, to, at, maxlen, itemPrefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local holds = tonumber(redis.call('HGET', P .. 'fh:' .. kind, from) or '0')
if holds == 0 then return {0, 'missing'} end
if string.sub(to, 1, #from + 1) == from .. '/' then return {0, 'inside'} end
if redis.call('HEXISTS', P .. 'fh:' .. kind, to) == 1 then return {0, 'exists'} end
local toParent = fd_parent(to)
if redis.call('HEXISTS', nm_map(P, kind, toParent), fd_leaf(to)) == 1 then return {0, 'exists'} end
if not fd_free(P, kind, toParent) then return {0, 'file'} end
local items = tonumber(redis.call('HGET', P .. 'fc:' .. kind, from) or '0')
local ids = redis.call('ZRANGE', P .. 'u:' .. kind .. '/' .. from, 0, -1)
-- The folders above the old place lose everything below it (not the root: it has no holds).
local fromParent = fd_parent(from)
redis.call('ZREM', P .. 'd:' .. kind .. '/' .. fromParent, fd_leaf(from))
fd_hold(P, kind, fromParent, -holds, -items)
local f = fromParent
while f ~= '' do
  for _, id in ipairs(ids) do redis.call('ZREM', P .. 'u:' .. kind .. '/' .. f, id) end
  f = fd_parent(f)
end
-- Every folder at and below the old place, and its keys, moves.
local queue = {from}
local i = 1
while i <= #queue do
  local old = queue[i]
  i = i + 1
  for _, child in ipairs(redis.call('ZRANGE', P .. 'd:' .. kind .. '/' .. old, 0, -1)) do table.insert(queue, old .. '/' .. child) end
  local new = to .. string.sub(old, #from + 1)
  for _, pair in ipairs({{nm_map(P, kind, old), nm_map(P, kind, new)}, {P .. 'f:' .. kind .. '/' .. old, P .. 'f:' .. kind .. '/' .. new}, {P .. 'u:' .. kind .. '/' .. old, P .. 'u:' .. kind .. '/' .. new}, {P .. 'd:' .. kind .. '/' .. old, P .. 'd:' .. kind .. '/' .. new}}) do
    if redis.call('EXISTS', pair[1]) == 1 then redis.call('RENAME', pair[1], pair[2]) end
  end
  for _, h in ipairs({P .. 'fh:' .. kind, P .. 'fc:' .. kind}) do
    local v = redis.call('HGET', h, old)
    if v then redis.call('HDEL', h, old); redis.call('HSET', h, new, v) end
  end
  if redis.call('SREM', KEYS[1], old) == 1 then redis.call('SADD', KEYS[1], new) end
end
-- The folders above the new place gain it.
redis.call('ZADD', P .. 'd:' .. kind .. '/' .. toParent, 0, fd_leaf(to))
fd_hold(P, kind, toParent, holds, items)
for _, id in ipairs(ids) do
  local key = itemPrefix .. id
  local folder = redis.call('HGET', key, 'folder') or ''
  local moved = to .. string.sub(folder, #from + 1)
  f = toParent
  while f ~= '' do
    redis.call('ZADD', P .. 'u:' .. kind .. '/' .. f, 0, id)
    f = fd_parent(f)
  end
  redis.call('HSET', key, 'folder', moved, 'updatedAt', at, 'nameFor', kind .. '/' .. moved .. '/' .. redis.call('HGET', key, 'filename'))
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'type', 'item.updated', 'id', id, 'at', at)
end
redis.call('INCR', P .. 'gen')
return {#ids}
`);

// KEYS: uploads, uploadTokens, blob:<new sha>, item:<id>, libraryEvents, blobTrash
// ARGV: leaseId, candidateKey, size, nowMs, maxlen, fields (JSON array), index prefix, terms,
// expected updatedAt, blob prefix, atIso
// New bytes for an existing item (a member storing onto their own path): the item keeps its id and
// everything else; its old blob loses a reference (and is trashed when that was the last), the new
// bytes are registered (or deduplicated) as at a commit; item.updated with content=1 follows.
// Returns {1, blobKey, deduped, freed blob key or ''}, {0} when the item is gone, {-1} when it changed
// since it was read (nothing done in either case: the lease stays for the caller to discard).
const REPLACE_CONTENT = new LuaScript(INDEX_LUA + `
if redis.call('EXISTS', KEYS[4]) == 0 then return {0} end
if redis.call('HGET', KEYS[4], 'updatedAt') ~= ARGV[9] then return {-1} end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply('LEASE_LOST upload lease expired')
end
redis.call('HDEL', KEYS[2], ARGV[1])
local id = redis.call('HGET', KEYS[4], 'id')
local oldSha = redis.call('HGET', KEYS[4], 'sha256')
local oldBlob = redis.call('HGET', KEYS[4], 'blobKey')
local blobKey = redis.call('HGET', KEYS[3], 'key')
local deduped = 0
if blobKey then
  redis.call('HINCRBY', KEYS[3], 'refs', 1)
  deduped = 1
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[2])
else
  blobKey = ARGV[2]
  redis.call('HSET', KEYS[3], 'key', blobKey, 'size', ARGV[3], 'refs', 1)
end
redis.call('HSET', KEYS[3], 'item', id)
local freed = ''
local old = ARGV[10] .. oldSha
if redis.call('HINCRBY', old, 'refs', -1) <= 0 then
  redis.call('DEL', old)
  redis.call('ZADD', KEYS[6], ARGV[4], oldBlob)
  freed = oldBlob
end
ix_remove(ARGV[7], id, KEYS[4])
redis.call('HSET', KEYS[4], unpack(cjson.decode(ARGV[6])))
redis.call('HSET', KEYS[4], 'blobKey', blobKey)
ix_add(ARGV[7], id, KEYS[4], ARGV[8])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'type', 'item.updated', 'id', id, 'at', ARGV[11], 'content', '1')
return {1, blobKey, deduped, freed}
`);

// ARGV: index prefix, kind, folder, item key prefix   The uploaders of the items in a folder and below.
const OWNERS_UNDER = new LuaScript(`
local seen, out = {}, {}
for _, id in ipairs(redis.call('ZRANGE', ARGV[1] .. 'u:' .. ARGV[2] .. '/' .. ARGV[3], 0, -1)) do
  local owner = redis.call('HGET', ARGV[4] .. id, 'uploadedBy')
  if owner and not seen[owner] then seen[owner] = true; table.insert(out, owner) end
end
return out
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
      return { blobKey, deduped: deduped === 1, ...(name ? { path: itemPath(item.kind, item.folder ?? '', name) } : {}) };
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
      for (const [k, v] of Object.entries({ ...changes, updatedAt: next.updatedAt, titleKey: titleSortKey(next.title), titleSort: titleSortText(next.title) })) {
        if (v === undefined) continue;
        fields.push(k, typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v));
      }
      const res = await withRedis(async () =>
        UPDATE_ITEM.run(this.redis, 2, keys.item(id), keys.libraryEvents, at, String(LIBRARY_EVENTS_MAXLEN), JSON.stringify(fields), keys.indexPrefix, termsOf(next), current.updatedAt, next.kind, next.folder ?? ''),
      );
      if (res === 1) return true;
      if (res === 0) return false;
      if (res === -2) throw folderIsFile(next.folder ?? '');
    }
    throw new Error('item changed too often while updating');
  }

  /** The latest `limit` items `username` uploaded, newest first. */
  itemsBy(username: string, limit: number): Promise<StoredItem[]> {
    return withRedis(async () => readItems(this.redis, await this.redis.zrevrange(keys.itemsByOwner(username), 0, limit - 1)));
  }

  /** The item named `name` in `folder` of `kind` (path names are kept by the search index), or null. */
  findByName(kind: string, folder: string, name: string): Promise<StoredItem | null> {
    return this.index.findByName(kind, folder, name);
  }

  /** One page of the items directly in `folder` of `kind` (see `RedisSearchIndex.scanNames`). */
  scanNames(kind: string, folder: string, cursor: string, count = 500): Promise<{ cursor: string; entries: { name: string; item: StoredItem }[] }> {
    return this.index.scanNames(kind, folder, cursor, count);
  }

  /** The path name of an item in its folder (null when it has none yet: not indexed). */
  nameOf(id: string): Promise<string | null> {
    return this.index.nameOf(id);
  }

  folderExists(kind: string, folder: string): Promise<boolean> {
    return this.index.folderExists(kind, folder);
  }

  folderItemCount(kind: string, folder: string): Promise<number> {
    return this.index.folderItemCount(kind, folder);
  }

  subfolders(kind: string, folder: string, after: string | null, limit: number): Promise<{ folders: { name: string; items: number }[]; more: boolean }> {
    return this.index.subfolders(kind, folder, after, limit);
  }

  /** Who uploaded the items in `folder` of `kind` and below it (not the root). */
  ownersUnder(kind: string, folder: string): Promise<string[]> {
    return withRedis(async () => (await OWNERS_UNDER.run(this.redis, 0, keys.indexPrefix, kind, folder, keys.item(''))) as string[]);
  }

  /** Makes an empty folder that stays until removed: 'made', 'exists', or 'file' (a file has a name on the way). */
  makeFolder(kind: string, folder: string): Promise<'made' | 'exists' | 'file'> {
    return withRedis(async () => {
      const res = (await MAKE_FOLDER.run(this.redis, 1, keys.foldersMade(kind), keys.indexPrefix, kind, folder)) as number;
      return res === 1 ? 'made' : res === 0 ? 'exists' : 'file';
    });
  }

  /** Removes an empty made folder: 'removed', 'missing', or 'not_empty' (it holds items or folders). */
  removeFolder(kind: string, folder: string): Promise<'removed' | 'missing' | 'not_empty'> {
    return withRedis(async () => {
      const res = (await REMOVE_FOLDER.run(this.redis, 1, keys.foldersMade(kind), keys.indexPrefix, kind, folder)) as number;
      return res === 1 ? 'removed' : res === 0 ? 'missing' : 'not_empty';
    });
  }

  /**
   * Moves `from` and everything below it to `to` in the same kind, atomically (readers see the old
   * tree or the new one): how many items moved, or why not.
   */
  moveFolder(kind: string, from: string, to: string): Promise<{ moved: number } | { refused: 'missing' | 'exists' | 'file' | 'inside' }> {
    return withRedis(async () => {
      const res = (await MOVE_FOLDER.run(this.redis, 2, keys.foldersMade(kind), keys.libraryEvents,
        keys.indexPrefix, kind, from, to, new Date().toISOString(), String(LIBRARY_EVENTS_MAXLEN), keys.item(''),
      )) as [number] | [0, string];
      if (res.length === 2) return { refused: res[1] as 'missing' | 'exists' | 'file' | 'inside' };
      return { moved: res[0] };
    });
  }

  /**
   * New bytes for an existing item, durable at `candidateKey` (see `commitUpload`): the item keeps its
   * id, folder, tags and description; its size, hash, type and blob change, its meta is emptied (the
   * enrichment reads the new bytes), and its old blob is trashed when nothing else references it.
   * Null when the item is gone or changed since `expected` was read (nothing done: the lease stays).
   */
  replaceContent(input: { leaseId: string; candidateKey: string; expected: StoredItem; sha256: string; size: number; contentType: string }): Promise<{ blobKey: string; deduped: boolean; freed: string | null } | null> {
    const { expected: item } = input;
    const at = new Date().toISOString();
    const next = { ...item, meta: {}, sha256: input.sha256, size: input.size, contentType: input.contentType, updatedAt: at };
    const fields = ['sha256', input.sha256, 'size', String(input.size), 'contentType', input.contentType, 'meta', '{}', 'updatedAt', at];
    return withRedis(async () => {
      const res = (await REPLACE_CONTENT.run(this.redis, 6,
        keys.uploads,
        keys.uploadTokens,
        keys.blob(input.sha256),
        keys.item(item.id),
        keys.libraryEvents,
        keys.blobTrash,
        input.leaseId,
        input.candidateKey,
        String(input.size),
        String(Date.now()),
        String(LIBRARY_EVENTS_MAXLEN),
        JSON.stringify(fields),
        keys.indexPrefix,
        termsOf(next),
        item.updatedAt,
        keys.blobPrefix,
        at,
      )) as [1, string, number, string] | [0] | [-1];
      if (res[0] !== 1) return null;
      return { blobKey: res[1]!, deduped: res[2] === 1, freed: res[3] || null };
    });
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
