import { createHash } from 'node:crypto';
import { ITEM_KINDS, publicItem, type Facets, type Item, type SearchQuery, type StoredItem } from '@nondivy/contracts';
import { badInput } from '@nondivy/errors';
import { parseQuery } from '@nondivy/search';
import type { Logger } from '@nondivy/log';
import { keys, LuaScript, RedisLibraryState, withRedis, type Redis } from '@nondivy/state';

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
/** Version of the index rules; bump it when stored index data changes shape (see upgradeIndex). 2: path names. */
export const INDEX_VERSION = 2;

interface Cursor {
  score: number;
  id: string;
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.score, c.id])).toString('base64url');
}

function decodeCursor(raw: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && Number.isFinite(v[0]) && typeof v[1] === 'string' && /^[A-Za-z0-9_-]{22}$/.test(v[1])) {
      return { score: v[0], id: v[1] };
    }
  } catch {
    /* fall through */
  }
  throw badInput('Invalid cursor');
}

/**
 * The whole query in one script: prefix expansion (cached union), the intersection of words,
 * filters and sort order (cached under the index generation and the query's signature), the rank of
 * the cursor's item, and one page. ARGV: index prefix, sort key, relevance 0|1, descending 0|1,
 * limit, cursor id, cursor score, ttl, max expansion, signature, prefix, kind, word count, words…, tags….
 * Returns {0} when nothing can match, else {total, result key, {id, score, …}}.
 */
const SEARCH_LUA = new LuaScript(`
local P, sortKey, rel, desc = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4] == '1'
local limit, curId, curScore, ttl, maxExp = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local signature, prefix, kind, nWords = ARGV[10], ARGV[11], ARGV[12], tonumber(ARGV[13])
local gen = redis.call('GET', P .. 'gen') or '0'
local w = rel and 1 or 0
local inputs, weights = {}, {}
for i = 1, nWords do
  table.insert(inputs, P .. 't:' .. ARGV[13 + i]); table.insert(weights, w)
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
if kind ~= '' then table.insert(inputs, P .. 'kind:' .. kind); table.insert(weights, 0) end
for i = 14 + nWords, #ARGV do table.insert(inputs, P .. 'tag:' .. ARGV[i]); table.insert(weights, 0) end
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

/**
 * Search, browse and facets over the index that libs/state maintains in Redis (plain sorted sets: one
 * per term, kind, tag and sort order). A query intersects the sets of its words (the last word
 * expanded as a prefix), filters and sort order in one ZINTERSTORE, cached for a minute under the
 * index generation, so paging and repeated queries are cheap and any change is seen at once.
 * Paging is by position of the last item seen: items added meanwhile never cause duplicates.
 */
export class CatalogSearch {
  private readonly items: RedisLibraryState;

  constructor(private readonly redis: Redis) {
    this.items = new RedisLibraryState(redis);
  }

  private sortKey(sort: string): string {
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
   * Runs the query in Redis in one round trip (SEARCH_LUA): the result set's key, how many match,
   * and one page of ids with scores. `possible` is false when no item can match.
   */
  private async run(query: SearchQuery, limit: number, cursor?: Cursor): Promise<{ possible: boolean; key: string; total: number; rows: string[] }> {
    const text = query.q ?? '';
    const parsed = parseQuery(text);
    const hasQuery = text.trim() !== '';
    if (hasQuery && parsed.words.length === 0 && !parsed.prefix) return { possible: false, key: '', total: 0, rows: [] };
    const sort = query.sort ?? (hasQuery ? 'relevance' : 'new');
    const tags = query.tag ?? [];
    const signature = createHash('sha1').update(JSON.stringify([parsed.words, parsed.prefix, query.kind ?? '', tags, sort])).digest('base64url');
    const res = (await SEARCH_LUA.run(
      this.redis,
      0,
      keys.indexPrefix,
      this.sortKey(sort),
      sort === 'relevance' ? '1' : '0',
      sort === 'title' ? '0' : '1',
      String(limit),
      cursor?.id ?? '',
      cursor ? String(cursor.score) : '',
      String(RESULT_TTL_SECONDS),
      String(MAX_PREFIX_EXPANSION),
      signature,
      parsed.prefix ?? '',
      query.kind ?? '',
      String(parsed.words.length),
      ...parsed.words,
      ...tags,
    )) as [number] | [number, string, string[]];
    if (res.length === 1) return { possible: false, key: '', total: 0, rows: [] };
    return { possible: true, total: res[0], key: res[1]!, rows: res[2]! };
  }

  /** One page of matches, in the requested order. */
  search(query: SearchQuery): Promise<{ items: Item[]; nextCursor: string | null; total: number }> {
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    return withRedis(async () => {
      const { possible, total, rows } = await this.run(query, query.limit, cursor);
      if (!possible) return { items: [], nextCursor: null, total: 0 };
      return this.page(rows, query.limit, total);
    });
  }

  private async page(raw: string[], limit: number, total: number) {
    const rows: Cursor[] = [];
    for (let i = 0; i < raw.length; i += 2) rows.push({ id: raw[i]!, score: Number(raw[i + 1]) });
    const hasMore = rows.length > limit;
    const shown = rows.slice(0, limit);
    const stored = await this.items.getItems(shown.map((r) => r.id));
    const last = shown[shown.length - 1];
    return { items: stored.map(publicItem), nextCursor: hasMore && last ? encodeCursor(last) : null, total };
  }

  /** Counts per kind and the top tags among the matches of `query` (sort and paging ignored). */
  facets(query: SearchQuery): Promise<Facets> {
    return withRedis(async () => {
      const filtered = (query.q ?? '').trim() !== '' || query.kind !== undefined || (query.tag?.length ?? 0) > 0;
      if (!filtered) {
        const [total, kinds, tags] = await Promise.all([
          this.redis.zcard(keys.itemsByCreated),
          this.redis.hgetall(ix.kindCounts),
          this.redis.zrevrange(ix.tagCounts, 0, TOP_TAGS - 1, 'WITHSCORES'),
        ]);
        const tagList: Facets['tags'] = [];
        for (let i = 0; i < tags.length; i += 2) tagList.push({ tag: tags[i]!, count: Number(tags[i + 1]) });
        return { total, kinds: Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, Number(v)]).filter(([, v]) => (v as number) > 0)), tags: tagList };
      }
      const { possible, key, total } = await this.run({ ...query, sort: 'new', cursor: undefined }, 0);
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

  private async tagFacets(key: string, total: number): Promise<Facets['tags']> {
    const counts = new Map<string, number>();
    if (total <= EXACT_TAG_FACETS) {
      const ids = await this.redis.zrange(key, '0', '-1');
      const pipe = this.redis.pipeline();
      for (const id of ids) pipe.hget(keys.item(id), 'tags');
      for (const [err, tags] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        for (const t of JSON.parse((tags as string | null) ?? '[]') as string[]) counts.set(t, (counts.get(t) ?? 0) + 1);
      }
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

  /**
   * Rebuilds the index when it was built by an older version of the index rules (recorded in the site
   * hash), so an upgraded site needs no manual step. Returns how many items were re-indexed.
   */
  async upgradeIndex(log: Logger): Promise<number> {
    const current = Number((await this.redis.hget(keys.site, 'indexVersion')) ?? 0);
    if (current >= INDEX_VERSION) return 0;
    const items = await this.redis.zcard(keys.itemsByCreated);
    let done = 0;
    if (items > 0) {
      log.info({ from: current, to: INDEX_VERSION, items }, 'rebuilding the search index for this version');
      done = await this.reindex();
    }
    await this.redis.hset(keys.site, 'indexVersion', String(INDEX_VERSION));
    return done;
  }

  /** Rebuilds the whole index from the item store; returns how many items were indexed. */
  async reindex(onProgress?: (done: number) => void): Promise<number> {
    await this.items.dropIndex();
    let done = 0;
    for await (const batch of this.redis.zscanStream(keys.itemsByCreated, { count: 500 }) as AsyncIterable<string[]>) {
      const ids = batch.filter((_, i) => i % 2 === 0);
      for (const item of await this.items.getItems(ids)) {
        if (await this.items.reindexItem(item as StoredItem)) done++;
      }
      onProgress?.(done);
    }
    return done;
  }
}
