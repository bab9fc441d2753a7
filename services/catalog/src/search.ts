import { publicItem, type Facets, type Item, type SearchQuery } from '@nondivy/contracts';
import { badInput } from '@nondivy/errors';
import { parseQuery } from '@nondivy/search';
import { RedisSearchIndex, type IndexCursor, type IndexQuery, type Redis } from '@nondivy/state';

function encodeCursor(c: IndexCursor): string {
  return Buffer.from(JSON.stringify([c.score, c.id])).toString('base64url');
}

/** A client's cursor back into the index position it names; anything else is refused. */
function decodeCursor(raw: string): IndexCursor {
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
 * The index's reading of a catalog query: the text split into words and a type-ahead prefix (libs/search),
 * the filters (kind, tags, and within a kind a folder: `folder` the items directly in it, `under` those
 * in it or below), and the order (relevance when there is text, newest first otherwise). Null when the
 * text has no word at all (only punctuation, say): nothing can match.
 */
function indexQuery(query: SearchQuery): IndexQuery | null {
  const text = query.q ?? '';
  const { words, prefix } = parseQuery(text);
  const hasQuery = text.trim() !== '';
  if (hasQuery && words.length === 0 && !prefix) return null;
  // The contract lets folder and under through only with a kind; the index reads them only with one.
  const scope = query.kind === undefined ? {} : { folder: query.folder, under: query.under };
  return { words, prefix, kind: query.kind, ...scope, tags: query.tag ?? [], sort: query.sort ?? (hasQuery ? 'relevance' : 'new') };
}

/**
 * The catalog's search, browsing and facets: parses and checks the query and the paging cursor, asks
 * the search index (libs/state's RedisSearchIndex, which owns the index in Redis), and answers with
 * public items and an opaque cursor.
 */
export class CatalogSearch {
  private readonly index: RedisSearchIndex;

  constructor(redis: Redis, options: { titleGroupMax?: number } = {}) {
    this.index = new RedisSearchIndex(redis, options);
  }

  /** One page of matches, in the requested order. */
  async search(query: SearchQuery): Promise<{ items: Item[]; nextCursor: string | null; total: number }> {
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const parsed = indexQuery(query);
    if (!parsed) return { items: [], nextCursor: null, total: 0 };
    const page = await this.index.search(parsed, query.limit, cursor);
    return { items: page.items.map(publicItem), nextCursor: page.next ? encodeCursor(page.next) : null, total: page.total };
  }

  /** Counts per kind and the top tags among the matches of `query` (sort and paging ignored). */
  async facets(query: SearchQuery): Promise<Facets> {
    const parsed = indexQuery(query);
    return parsed ? this.index.facets(parsed) : { total: 0, kinds: {}, tags: [] };
  }

  /** Rebuilds the whole index from the item store; returns how many items were indexed. */
  reindex(onProgress?: (done: number) => void): Promise<number> {
    return this.index.rebuild(onProgress);
  }
}
