import { createHash } from 'node:crypto';
import { ITEM_KINDS, publicItem, type Facets, type Item, type SearchQuery, type StoredItem } from '@nondivy/contracts';
import { badInput } from '@nondivy/errors';
import { parseQuery } from '@nondivy/search';
import { keys, RedisLibraryState, withRedis, type Redis } from '@nondivy/state';

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

interface Plan {
  /** The sorted set to page through (a cached intersection, or a whole sort set). */
  key: string;
  descending: boolean;
  /** False when the query can match nothing (a prefix no term has). */
  possible: boolean;
}

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

  /** Works out which sorted set answers the query, computing (or reusing) the intersection. */
  private async plan(query: SearchQuery, forFacets = false): Promise<Plan> {
    const text = query.q ?? '';
    const parsed = parseQuery(text);
    const hasQuery = text.trim() !== '';
    if (hasQuery && parsed.words.length === 0 && !parsed.prefix) return { key: '', descending: true, possible: false };
    const sort = query.sort ?? (hasQuery ? 'relevance' : 'new');
    const relevance = sort === 'relevance';
    const descending = sort !== 'title';
    const sortKey = this.sortKey(sort);

    const inputs: [string, number][] = parsed.words.map((w) => [ix.term(w), relevance ? 1 : 0]);
    const generation = (await this.redis.get(ix.generation)) ?? '0';
    if (parsed.prefix) {
      const terms = await this.redis.zrangebylex(ix.terms, `[${parsed.prefix}`, `[${parsed.prefix}\xff`, 'LIMIT', 0, MAX_PREFIX_EXPANSION);
      if (terms.length === 0) return { key: '', descending, possible: false };
      if (terms.length === 1) {
        inputs.push([ix.term(terms[0]!), relevance ? 1 : 0]);
      } else {
        const union = ix.cache(`p:${generation}:${parsed.prefix}`);
        if (!(await this.redis.exists(union))) {
          await this.redis
            .multi()
            .zunionstore(union, terms.length, ...terms.map((t) => ix.term(t)), 'AGGREGATE', 'MAX')
            .expire(union, RESULT_TTL_SECONDS)
            .exec();
        }
        inputs.push([union, relevance ? 1 : 0]);
      }
    }
    if (query.kind) inputs.push([ix.kind(query.kind), 0]);
    for (const tag of query.tag ?? []) inputs.push([ix.tag(tag), 0]);
    if (inputs.length === 0) return { key: forFacets ? keys.itemsByCreated : sortKey, descending, possible: true };

    // Relevance ties go to the newest: creation time in ms times 1e-13 stays below one point.
    inputs.push([sortKey, relevance ? 1e-13 : 1]);
    const signature = JSON.stringify(inputs);
    const key = ix.cache(`r:${generation}:${createHash('sha1').update(signature).digest('base64url')}`);
    if (!(await this.redis.exists(key))) {
      await this.redis
        .multi()
        .zinterstore(key, inputs.length, ...inputs.map(([k]) => k), 'WEIGHTS', ...inputs.map(([, w]) => w), 'AGGREGATE', 'SUM')
        .expire(key, RESULT_TTL_SECONDS)
        .exec();
    }
    return { key, descending, possible: true };
  }

  /** One page of matches, in the requested order. */
  search(query: SearchQuery): Promise<{ items: Item[]; nextCursor: string | null; total: number }> {
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    return withRedis(async () => {
      const plan = await this.plan(query);
      if (!plan.possible) return { items: [], nextCursor: null, total: 0 };
      const limit = query.limit;
      let start = 0;
      let raw: string[];
      const total = await this.redis.zcard(plan.key);
      if (cursor) {
        const rank = plan.descending ? await this.redis.zrevrank(plan.key, cursor.id) : await this.redis.zrank(plan.key, cursor.id);
        if (rank !== null) {
          start = rank + 1;
        } else {
          // The last item seen left the results: continue after its score.
          const bound = `(${cursor.score}`;
          raw = plan.descending
            ? await this.redis.zrevrangebyscore(plan.key, bound, '-inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
            : await this.redis.zrangebyscore(plan.key, bound, '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1);
          return this.page(raw, limit, total);
        }
      }
      raw = plan.descending
        ? await this.redis.zrevrange(plan.key, start, start + limit, 'WITHSCORES')
        : await this.redis.zrange(plan.key, String(start), String(start + limit), 'WITHSCORES');
      return this.page(raw, limit, total);
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
      const plan = await this.plan({ ...query, sort: 'new', cursor: undefined }, true);
      if (!plan.possible) return { total: 0, kinds: {}, tags: [] };
      if (plan.key === keys.itemsByCreated) {
        const [total, kinds, tags] = await Promise.all([
          this.redis.zcard(keys.itemsByCreated),
          this.redis.hgetall(ix.kindCounts),
          this.redis.zrevrange(ix.tagCounts, 0, TOP_TAGS - 1, 'WITHSCORES'),
        ]);
        const tagList: Facets['tags'] = [];
        for (let i = 0; i < tags.length; i += 2) tagList.push({ tag: tags[i]!, count: Number(tags[i + 1]) });
        return { total, kinds: Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, Number(v)]).filter(([, v]) => (v as number) > 0)), tags: tagList };
      }
      const total = await this.redis.zcard(plan.key);
      const kindPipe = this.redis.pipeline();
      for (const kind of ITEM_KINDS) kindPipe.call('ZINTERCARD', 2, plan.key, ix.kind(kind));
      const kindCounts = ((await kindPipe.exec()) ?? []).map(([err, n]) => {
        if (err) throw err;
        return Number(n);
      });
      const kinds = Object.fromEntries(ITEM_KINDS.map((k, i) => [k, kindCounts[i]!]).filter(([, n]) => (n as number) > 0));
      return { total, kinds, tags: await this.tagFacets(plan.key, total) };
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
