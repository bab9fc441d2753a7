import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ITEM_KINDS, type Facets, type StoredItem } from '@nondivy/contracts';
import type { Logger } from '@nondivy/log';
import { type IndexableItem, termScore, termWeights, titleSortKey, titleSortText } from '@nondivy/search';
import { keys } from './keys.js';
import { readItem, readItems, readTags } from './item-hash.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';
import { SiteIdentityStore } from './site-identity-store.js';

/**
 * The search index, written and read here: plain sorted sets under `nd:ix:` (one per term, kind, tag
 * and sort order), facet counts, the kinds' path names, and a generation counter. Item changes update
 * it inside their own scripts (library-state.ts splices in INDEX_LUA below), so search never shows a
 * deleted item nor misses a committed one; this module answers queries, counts facets and rebuilds.
 */

/**
 * Version of the index rules; bump it when stored index data changes shape (see `upgrade`). 2: path
 * names. 3: the uploaders' item sets (`itemsByOwner`), rebuilt with the index. 4: folders (path
 * names per folder, folder sets, subfolder lists and counts; made folders counted again). 5: each
 * item's title sort text (`titleSort`), which orders titles that share their first ten characters.
 */
export const SEARCH_INDEX_VERSION = 5;

/** Largest group of titles sharing their first ten characters that `sort=title` orders by the rest. */
export const TITLE_GROUP_MAX = 1000;

/** Most index terms a type-ahead prefix expands to (the most common ones first would need counts; these are the first in order). */
const MAX_PREFIX_EXPANSION = 200;
/** How long a computed result set is kept for paging and repeated queries, seconds. */
const RESULT_TTL_SECONDS = 60;
/** Up to this many matches, tag facets are counted exactly over every match. */
const EXACT_TAG_FACETS = 5000;
/** Beyond it, the counts of this many most common tags of the library are computed exactly. */
const CANDIDATE_TAGS = 200;
const TOP_TAGS = 20;

const ix = keys.index;

/** The item's index terms as the scripts store them: JSON [[term, score], ...] (see termScore). */
export const indexTermsOf = (item: IndexableItem & { createdAt: string }): string => {
  const created = Date.parse(item.createdAt);
  return JSON.stringify([...termWeights(item)].map(([term, weight]) => [term, termScore(weight, created)]));
};

// Index maintenance spliced into the item scripts of library-state.ts, run inside the same script as
// the item change. P is the index key prefix. An item is indexed when its hash has `terms` (JSON
// [[term, score], ...], computed with libs/search).
//
// Path names: every item has a name unique within its folder of its kind (nm_map, a hash name → id),
// which is its file name when free (and not the name of a subfolder there), else the name with the
// start of its id added before the extension. The item keeps its name (fields name, nameFor) for as
// long as its kind, folder and file name stay the same, across re-indexing and rebuilds, so a name
// once shown keeps meaning the same item. (nameFor is `kind/folder/filename`, or `kind/filename` at
// the kind's root, as items indexed before folders have it.)
//
// Folders: an item is in the set of its folder (P .. 'f:' .. kind .. '/' .. folder) and in the
// 'u:' set of its folder and of every folder above it but the root (the `under` filter). Each
// folder but the root has holds (fh: its items and made folders, itself and below) and an item count
// (fc: its items and below); it exists while it has holds, listed by name in its parent's 'd:' set.
export const INDEX_LUA = `
local function fd_parent(folder)
  return string.match(folder, '^(.*)/[^/]*$') or ''
end
local function fd_leaf(folder)
  return string.match(folder, '[^/]*$')
end
local function nm_map(P, kind, folder)
  if folder == '' then return P .. 'name:' .. kind .. '/' end
  return P .. 'name:' .. kind .. '/' .. folder .. '/'
end
-- Adds delta holds (and items) to folder and to every folder above it but the root. A folder whose
-- holds reach 0 is gone: it leaves its parent's list of subfolders; one that gets its first joins it.
local function fd_hold(P, kind, folder, delta, items)
  local f = folder
  while f ~= '' do
    local n = redis.call('HINCRBY', P .. 'fh:' .. kind, f, delta)
    if items ~= 0 and redis.call('HINCRBY', P .. 'fc:' .. kind, f, items) <= 0 then redis.call('HDEL', P .. 'fc:' .. kind, f) end
    local parent = fd_parent(f)
    if n <= 0 then
      redis.call('HDEL', P .. 'fh:' .. kind, f)
      redis.call('HDEL', P .. 'fc:' .. kind, f)
      redis.call('ZREM', P .. 'd:' .. kind .. '/' .. parent, fd_leaf(f))
    elseif delta > 0 and n == delta then
      redis.call('ZADD', P .. 'd:' .. kind .. '/' .. parent, 0, fd_leaf(f))
    end
    f = parent
  end
end
-- True when folder can exist: it exists, or no folder on the way to it has the name of an item.
local function fd_free(P, kind, folder)
  local f = folder
  while f ~= '' do
    if redis.call('HEXISTS', P .. 'fh:' .. kind, f) == 1 then return true end
    local parent = fd_parent(f)
    if redis.call('HEXISTS', nm_map(P, kind, parent), fd_leaf(f)) == 1 then return false end
    f = parent
  end
  return true
end
local function nm_release(P, id, itemKey)
  local prev = redis.call('HGET', itemKey, 'name')
  local prevFor = redis.call('HGET', itemKey, 'nameFor')
  if prev and prevFor then
    local map = P .. 'name:' .. string.match(prevFor, '^(.*)/[^/]*$') .. '/'
    if redis.call('HGET', map, prev) == id then redis.call('HDEL', map, prev) end
  end
end
local function nm_assign(P, id, itemKey)
  local kind = redis.call('HGET', itemKey, 'kind')
  local folder = redis.call('HGET', itemKey, 'folder') or ''
  local fname = redis.call('HGET', itemKey, 'filename')
  local dir = kind
  if folder ~= '' then dir = kind .. '/' .. folder end
  local want = dir .. '/' .. fname
  local map = nm_map(P, kind, folder)
  local prev = redis.call('HGET', itemKey, 'name')
  if prev and redis.call('HGET', itemKey, 'nameFor') == want then
    local holder = redis.call('HGET', map, prev)
    if holder == id then return end
    if not holder then redis.call('HSET', map, prev, id) return end
  end
  nm_release(P, id, itemKey)
  local subdirs = P .. 'd:' .. kind .. '/' .. folder
  local stem, ext = string.match(fname, '^(.+)(%.[^.]+)$')
  if not stem then stem = fname; ext = '' end
  local candidates = {fname, stem .. ' (' .. string.sub(id, 1, 6) .. ')' .. ext, stem .. ' (' .. id .. ')' .. ext}
  for _, c in ipairs(candidates) do
    if not redis.call('ZSCORE', subdirs, c) and redis.call('HSETNX', map, c, id) == 1 then
      redis.call('HSET', itemKey, 'name', c, 'nameFor', want)
      return
    end
  end
end
local function fd_add_item(P, id, kind, folder)
  redis.call('ZADD', P .. 'f:' .. kind .. '/' .. folder, 0, id)
  local f = folder
  while f ~= '' do
    redis.call('ZADD', P .. 'u:' .. kind .. '/' .. f, 0, id)
    f = fd_parent(f)
  end
  fd_hold(P, kind, folder, 1, 1)
end
local function fd_remove_item(P, id, kind, folder)
  redis.call('ZREM', P .. 'f:' .. kind .. '/' .. folder, id)
  local f = folder
  while f ~= '' do
    redis.call('ZREM', P .. 'u:' .. kind .. '/' .. f, id)
    f = fd_parent(f)
  end
  fd_hold(P, kind, folder, -1, -1)
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
  fd_remove_item(P, id, kind, redis.call('HGET', itemKey, 'folder') or '')
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
  fd_add_item(P, id, kind, redis.call('HGET', itemKey, 'folder') or '')
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

// ARGV: index prefix, kind, folder   Counts a made folder (FTP MKD) again, for rebuilds.
const HOLD_MADE_FOLDER = new LuaScript(INDEX_LUA + `
fd_hold(ARGV[1], ARGV[2], ARGV[3], 1, 0)
return 1
`);

// KEYS: item:<id>   ARGV: index prefix, terms, title sort key, title sort text   (Re)indexes one item, for rebuilds.
const REINDEX_ITEM = new LuaScript(INDEX_LUA + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = redis.call('HGET', KEYS[1], 'id')
ix_remove(ARGV[1], id, KEYS[1])
redis.call('HSET', KEYS[1], 'titleKey', ARGV[3], 'titleSort', ARGV[4])
ix_add(ARGV[1], id, KEYS[1], ARGV[2])
return 1
`);

/**
 * The whole query in one script: prefix expansion (cached union), the intersection of words,
 * filters and sort order (cached under the index generation and the query's signature), the rank of
 * the cursor's item, and one page. ARGV: index prefix, sort key, relevance 0|1, descending 0|1,
 * limit, cursor id, cursor score, ttl, max expansion, signature, prefix, kind, folder set key (or ''),
 * word count, item key prefix, largest title group ordered by text, words…, tags….
 * Returns {0} when nothing can match, else {total, result key, {id, score, …}}.
 */
const SEARCH_LUA = new LuaScript(`
local P, sortKey, rel, desc = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4] == '1'
local limit, curId, curScore, ttl, maxExp = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local signature, prefix, kind, scope, nWords, itemPrefix = ARGV[10], ARGV[11], ARGV[12], ARGV[13], tonumber(ARGV[14]), ARGV[15]
local titleGroupMax = tonumber(ARGV[16])
local gen = redis.call('GET', P .. 'gen') or '0'
local w = rel and 1 or 0
local inputs, weights = {}, {}
for i = 1, nWords do
  table.insert(inputs, P .. 't:' .. ARGV[16 + i]); table.insert(weights, w)
end
if prefix ~= '' then
  local terms = redis.call('ZRANGEBYLEX', P .. 'terms', '[' .. prefix, '[' .. prefix .. '\\255', 'LIMIT', 0, maxExp)
  if #terms == 0 then return {0} end
  if #terms == 1 then
    table.insert(inputs, P .. 't:' .. terms[1])
  else
    local union = P .. 'q:p:' .. gen .. ':' .. prefix
    if redis.call('EXISTS', union) == 0 then
      local args = {union, #terms}
      for _, t in ipairs(terms) do table.insert(args, P .. 't:' .. t) end
      table.insert(args, 'AGGREGATE'); table.insert(args, 'MAX')
      redis.call('ZUNIONSTORE', unpack(args))
      redis.call('EXPIRE', union, ttl)
    end
    table.insert(inputs, union)
  end
  table.insert(weights, w)
end
if scope ~= '' then
  -- A folder set holds items of one kind only: it replaces the kind's set.
  table.insert(inputs, scope); table.insert(weights, 0)
elseif kind ~= '' then
  table.insert(inputs, P .. 'kind:' .. kind); table.insert(weights, 0)
end
for i = 17 + nWords, #ARGV do table.insert(inputs, P .. 'tag:' .. ARGV[i]); table.insert(weights, 0) end
local key = sortKey
if rel and #inputs == 1 then
  -- One word (or one prefix) ranked by relevance: its set is the answer (term scores carry the
  -- creation time as a tie-break, see libs/search termScore).
  key = inputs[1]
elseif #inputs > 0 then
  -- Relevance needs no sort set: summed term scores already order ties newest first.
  if not rel then table.insert(inputs, sortKey); table.insert(weights, '1') end
  key = P .. 'q:r:' .. gen .. ':' .. signature
  if redis.call('EXISTS', key) == 0 then
    local args = {key, #inputs}
    for _, k in ipairs(inputs) do table.insert(args, k) end
    table.insert(args, 'WEIGHTS')
    for _, x in ipairs(weights) do table.insert(args, x) end
    table.insert(args, 'AGGREGATE'); table.insert(args, 'SUM')
    redis.call('ZINTERSTORE', unpack(args))
    redis.call('EXPIRE', key, ttl)
  end
end
local total = redis.call('ZCARD', key)
if limit == 0 then return {total, key, {}} end
if sortKey == P .. 'title' and not rel then
  -- By title: the score holds the first ten characters of the sort text; titles that share them
  -- are ordered by the whole text (then id), each group read whole, so pages follow one order with
  -- no duplicates or gaps. A group larger than titleGroupMax (a flood of one title) is not read
  -- whole on every page: it keeps id order and is paged by position, like the other sorts.
  local function textOf(id)
    local t = redis.call('HGET', itemPrefix .. id, 'titleSort')
    if not t then t = string.lower(redis.call('HGET', itemPrefix .. id, 'title') or '') end
    return t
  end
  -- Up to count ids of the items of one score, in order, after afterId when given.
  local function group(score, afterId, count)
    if redis.call('ZCOUNT', key, score, score) > titleGroupMax then
      if not afterId then return redis.call('ZRANGEBYSCORE', key, score, score, 'LIMIT', 0, count) end
      local rank = redis.call('ZRANK', key, afterId)
      -- The cursor's item is gone: the rest of its group is skipped, as the other sorts do.
      if not rank then return {} end
      local ids = {}
      local rows = redis.call('ZRANGE', key, rank + 1, rank + count, 'WITHSCORES')
      for i = 1, #rows, 2 do
        if tonumber(rows[i + 1]) ~= tonumber(score) then break end
        ids[#ids + 1] = rows[i]
      end
      return ids
    end
    local rows = {}
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do rows[#rows + 1] = {id, textOf(id)} end
    table.sort(rows, function(a, b) if a[2] ~= b[2] then return a[2] < b[2] end return a[1] < b[1] end)
    -- After the cursor's item: by its text, or by id when that item is gone and its text unknown.
    local afterText = afterId and redis.call('EXISTS', itemPrefix .. afterId) == 1 and textOf(afterId) or nil
    local ids = {}
    for _, r in ipairs(rows) do
      if #ids >= count then break end
      local after = not afterId
      if afterId and afterText == nil then after = r[1] > afterId
      elseif afterId then after = r[2] > afterText or (r[2] == afterText and r[1] > afterId) end
      if after then ids[#ids + 1] = r[1] end
    end
    return ids
  end
  local want = limit + 1
  local out = {}
  local function take(ids, score)
    for _, id in ipairs(ids) do
      if #out >= 2 * want then return end
      out[#out + 1] = id; out[#out + 1] = score
    end
  end
  local from = '-inf'
  if curId ~= '' then
    take(group(curScore, curId, want), curScore)
    from = '(' .. curScore
  end
  while #out < 2 * want do
    local next = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #next == 0 then break end
    take(group(next[2], nil, want - #out / 2), next[2])
    from = '(' .. next[2]
  end
  return {total, key, out}
end
local start = 0
local rows = nil
if curId ~= '' then
  local rank
  if desc then rank = redis.call('ZREVRANK', key, curId) else rank = redis.call('ZRANK', key, curId) end
  if rank then
    start = rank + 1
  elseif desc then
    rows = redis.call('ZREVRANGEBYSCORE', key, '(' .. curScore, '-inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
  else
    rows = redis.call('ZRANGEBYSCORE', key, '(' .. curScore, '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
  end
end
if not rows then
  if desc then rows = redis.call('ZREVRANGE', key, start, start + limit, 'WITHSCORES')
  else rows = redis.call('ZRANGE', key, start, start + limit, 'WITHSCORES') end
end
return {total, key, rows}
`);

/** A query as the index understands it: already parsed into words and a type-ahead prefix. */
export interface IndexQuery {
  words: string[];
  /** The last word, still being typed: it matches every term it begins. */
  prefix: string | null;
  kind?: string;
  /** With `kind`: only the items directly in this folder (`''`: the kind's root). */
  folder?: string;
  /** With `kind`: only the items in this folder or below (`''`: the whole kind). */
  under?: string;
  tags: string[];
  sort: 'relevance' | 'new' | 'title' | 'size' | 'popular';
}

/** The index set a query's folder filter reads, or '' when it has none. */
function scopeKey(query: Pick<IndexQuery, 'kind' | 'folder' | 'under'>): string {
  if (query.kind === undefined) return '';
  if (query.folder !== undefined) return ix.inFolder(query.kind, query.folder);
  if (query.under !== undefined && query.under !== '') return ix.underFolder(query.kind, query.under);
  return '';
}

/** A position in a result list: the last item seen and its score there. */
export interface IndexCursor {
  score: number;
  id: string;
}

/** One page of matches: the items, how many match in all, and where the next page starts. */
export interface IndexPage {
  items: StoredItem[];
  total: number;
  next: IndexCursor | null;
}

function sortKey(sort: IndexQuery['sort']): string {
  switch (sort) {
    case 'title':
      return ix.title;
    case 'size':
      return ix.size;
    case 'popular':
      return ix.popular;
    default:
      return keys.itemsByCreated;
  }
}

/**
 * Search, browse and facets over the index. A query intersects the sets of its words (the last word
 * expanded as a prefix), filters and sort order in one ZINTERSTORE, cached for a minute under the
 * index generation, so paging and repeated queries are cheap and any change is seen at once. Paging is
 * by position of the last item seen: items added meanwhile never cause duplicates.
 */
export class RedisSearchIndex {
  private readonly site: SiteIdentityStore;
  private readonly titleGroupMax: number;

  /**
   * `titleGroupMax`: titles sharing their first ten characters are ordered by the rest when at most
   * this many share them (each page then reads the whole group); a larger group keeps id order.
   */
  constructor(
    private readonly redis: Redis,
    options: { titleGroupMax?: number } = {},
  ) {
    this.site = new SiteIdentityStore(redis);
    this.titleGroupMax = options.titleGroupMax ?? TITLE_GROUP_MAX;
  }

  /**
   * Runs the query in Redis in one round trip (SEARCH_LUA): the result set's key, how many match,
   * and one page of ids with scores (`limit` 0: none). `possible` is false when no item can match.
   */
  private async run(query: IndexQuery, limit: number, after?: IndexCursor): Promise<{ possible: boolean; key: string; total: number; rows: string[] }> {
    const scope = scopeKey(query);
    const signature = createHash('sha1').update(JSON.stringify([query.words, query.prefix, query.kind ?? '', scope, query.tags, query.sort])).digest('base64url');
    const res = (await SEARCH_LUA.run(
      this.redis,
      0,
      keys.indexPrefix,
      sortKey(query.sort),
      query.sort === 'relevance' ? '1' : '0',
      query.sort === 'title' ? '0' : '1',
      String(limit),
      after?.id ?? '',
      after ? String(after.score) : '',
      String(RESULT_TTL_SECONDS),
      String(MAX_PREFIX_EXPANSION),
      signature,
      query.prefix ?? '',
      query.kind ?? '',
      scope,
      String(query.words.length),
      keys.item(''),
      String(this.titleGroupMax),
      ...query.words,
      ...query.tags,
    )) as [number] | [number, string, string[]];
    if (res.length === 1) return { possible: false, key: '', total: 0, rows: [] };
    return { possible: true, total: res[0], key: res[1]!, rows: res[2]! };
  }

  /** One page of at most `limit` matches in the query's order, after `after` when given. */
  search(query: IndexQuery, limit: number, after?: IndexCursor): Promise<IndexPage> {
    return withRedis(async () => {
      const { possible, total, rows: raw } = await this.run(query, limit, after);
      if (!possible) return { items: [], next: null, total: 0 };
      const rows: IndexCursor[] = [];
      for (let i = 0; i < raw.length; i += 2) rows.push({ id: raw[i]!, score: Number(raw[i + 1]) });
      const shown = rows.slice(0, limit);
      const last = shown[shown.length - 1];
      const items = await readItems(this.redis, shown.map((r) => r.id));
      return { items, next: rows.length > limit && last ? last : null, total };
    });
  }

  /** Counts per kind and the top tags among the matches of `query` (its sort ignored). */
  facets(query: Omit<IndexQuery, 'sort'>): Promise<Facets> {
    return withRedis(async () => {
      const filtered = query.words.length > 0 || query.prefix !== null || query.kind !== undefined || query.tags.length > 0 || scopeKey(query) !== '';
      if (!filtered) return this.libraryFacets();
      const { possible, key, total } = await this.run({ ...query, sort: 'new' }, 0);
      if (!possible) return { total: 0, kinds: {}, tags: [] };
      const kindPipe = this.redis.pipeline();
      for (const kind of ITEM_KINDS) kindPipe.call('ZINTERCARD', 2, key, ix.kind(kind));
      const kindCounts = ((await kindPipe.exec()) ?? []).map(([err, n]) => {
        if (err) throw err;
        return Number(n);
      });
      const kinds = Object.fromEntries(ITEM_KINDS.map((k, i) => [k, kindCounts[i]!]).filter(([, n]) => (n as number) > 0));
      return { total, kinds, tags: await this.tagFacets(key, total) };
    });
  }

  /** Facets of the whole library, from the counts the index keeps as items change. */
  private async libraryFacets(): Promise<Facets> {
    const [total, kinds, tags] = await Promise.all([
      this.redis.zcard(keys.itemsByCreated),
      this.redis.hgetall(ix.kindCounts),
      this.redis.zrevrange(ix.tagCounts, 0, TOP_TAGS - 1, 'WITHSCORES'),
    ]);
    const tagList: Facets['tags'] = [];
    for (let i = 0; i < tags.length; i += 2) tagList.push({ tag: tags[i]!, count: Number(tags[i + 1]) });
    return { total, kinds: Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, Number(v)]).filter(([, v]) => (v as number) > 0)), tags: tagList };
  }

  private async tagFacets(key: string, total: number): Promise<Facets['tags']> {
    const counts = new Map<string, number>();
    if (total <= EXACT_TAG_FACETS) {
      const ids = await this.redis.zrange(key, '0', '-1');
      for (const tags of await readTags(this.redis, ids)) for (const t of tags) counts.set(t, (counts.get(t) ?? 0) + 1);
    } else {
      const candidates = await this.redis.zrevrange(ix.tagCounts, 0, CANDIDATE_TAGS - 1);
      const pipe = this.redis.pipeline();
      for (const t of candidates) pipe.call('ZINTERCARD', 2, key, ix.tag(t));
      ((await pipe.exec()) ?? []).forEach(([err, n], i) => {
        if (err) throw err;
        if (Number(n) > 0) counts.set(candidates[i]!, Number(n));
      });
    }
    return [...counts.entries()]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, TOP_TAGS)
      .map(([tag, count]) => ({ tag, count }));
  }

  /** The item named `name` in `folder` of `kind` (see the path names above), or null. */
  findByName(kind: string, folder: string, name: string): Promise<StoredItem | null> {
    return withRedis(async () => {
      const id = await this.redis.hget(ix.names(kind, folder), name);
      return id ? readItem(this.redis, id) : null;
    });
  }

  /** The path name of an item in its folder (null when it has none yet: not indexed). */
  nameOf(id: string): Promise<string | null> {
    return withRedis(() => this.redis.hget(keys.item(id), 'name'));
  }

  /**
   * One page of the items directly in `folder` of `kind`: names with their items, in no particular
   * order. Start with cursor '0'; the listing is complete when the returned cursor is '0' again.
   */
  scanNames(kind: string, folder: string, cursor: string, count = 500): Promise<{ cursor: string; entries: { name: string; item: StoredItem }[] }> {
    return withRedis(async () => {
      const [next, flat] = await this.redis.hscan(ix.names(kind, folder), cursor, 'COUNT', count);
      const names: string[] = [];
      const ids: string[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        names.push(flat[i]!);
        ids.push(flat[i + 1]!);
      }
      const byId = new Map((await readItems(this.redis, ids)).map((it) => [it.id, it]));
      const entries: { name: string; item: StoredItem }[] = [];
      names.forEach((name, i) => {
        const item = byId.get(ids[i]!);
        if (item) entries.push({ name, item });
      });
      return { cursor: next, entries };
    });
  }

  /** Whether `folder` of `kind` exists (the kind's root always does). */
  folderExists(kind: string, folder: string): Promise<boolean> {
    if (folder === '') return Promise.resolve(true);
    return withRedis(async () => (await this.redis.hexists(ix.folderHolds(kind), folder)) === 1);
  }

  /** How many items are in `folder` of `kind` or below it (the root: the whole kind). */
  folderItemCount(kind: string, folder: string): Promise<number> {
    return withRedis(async () => Number((folder === '' ? await this.redis.hget(ix.kindCounts, kind) : await this.redis.hget(ix.folderItems(kind), folder)) ?? 0));
  }

  /**
   * The folders directly under `folder` of `kind`, by name (code point order), after the name
   * `after`, at most `limit`, each with how many items are in it or below; `more` when others follow.
   */
  subfolders(kind: string, folder: string, after: string | null, limit: number): Promise<{ folders: { name: string; items: number }[]; more: boolean }> {
    return withRedis(async () => {
      const min = after === null ? '-' : `(${after}`;
      const names = await this.redis.zrangebylex(ix.subfolders(kind, folder), min, '+', 'LIMIT', 0, limit + 1);
      const shown = names.slice(0, limit);
      const paths = shown.map((n) => (folder === '' ? n : `${folder}/${n}`));
      const counts = paths.length ? await this.redis.hmget(ix.folderItems(kind), ...paths) : [];
      return { folders: shown.map((name, i) => ({ name, items: Number(counts[i] ?? 0) })), more: names.length > limit };
    });
  }

  /**
   * Rebuilds the index when it was built by an older version of the index rules (recorded in the site
   * hash), so an upgraded site needs no manual step. Returns how many items were re-indexed.
   */
  async upgrade(log: Logger): Promise<number> {
    const current = await this.site.dataVersion('indexVersion');
    if (current >= SEARCH_INDEX_VERSION) return 0;
    const items = await withRedis(() => this.redis.zcard(keys.itemsByCreated));
    let done = 0;
    if (items > 0) {
      log.info({ from: current, to: SEARCH_INDEX_VERSION, items }, 'rebuilding the search index for this version');
      done = await this.rebuild();
    }
    await this.site.setDataVersion('indexVersion', SEARCH_INDEX_VERSION);
    return done;
  }

  /**
   * Rebuilds the whole index, and the uploaders' item sets, from the item store (and the made
   * folders, which are kept apart); returns how many items were indexed.
   */
  async rebuild(onProgress?: (done: number) => void): Promise<number> {
    await this.drop();
    let done = 0;
    for await (const batch of this.redis.zscanStream(keys.itemsByCreated, { count: 500 }) as AsyncIterable<string[]>) {
      const ids = batch.filter((_, i) => i % 2 === 0);
      for (const item of await withRedis(() => readItems(this.redis, ids))) {
        if (await this.reindexItem(item)) {
          done++;
          await withRedis(() => this.redis.zadd(keys.itemsByOwner(item.uploadedBy), Date.parse(item.createdAt), item.id));
        }
      }
      onProgress?.(done);
    }
    for (const kind of ITEM_KINDS) {
      for await (const made of this.redis.sscanStream(keys.foldersMade(kind), { count: 500 }) as AsyncIterable<string[]>) {
        for (const folder of made) await withRedis(() => HOLD_MADE_FOLDER.run(this.redis, 0, keys.indexPrefix, kind, folder));
      }
    }
    return done;
  }

  /** Rebuilds one item's index entries from its stored fields; false when it does not exist. */
  private reindexItem(item: StoredItem): Promise<boolean> {
    return withRedis(async () => (await REINDEX_ITEM.run(this.redis, 1, keys.item(item.id), keys.indexPrefix, indexTermsOf(item), String(titleSortKey(item.title)), titleSortText(item.title))) === 1);
  }

  /** Deletes every index key (for a rebuild); items are untouched. */
  private async drop(): Promise<number> {
    let dropped = 0;
    for await (const batch of this.redis.scanStream({ match: `${keys.indexPrefix}*`, count: 1000 }) as AsyncIterable<string[]>) {
      if (batch.length) dropped += await this.redis.unlink(...batch);
    }
    for await (const batch of this.redis.scanStream({ match: `${keys.itemsByOwnerPrefix}*`, count: 1000 }) as AsyncIterable<string[]>) {
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
}
