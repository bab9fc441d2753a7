/**
 * Text rules of the catalogue, shared by the writer of the index (libs/state, in the same
 * transaction as the item) and its reader (the catalog service): folding, tokens, field weights and
 * the title sort key. Changing them requires `npm run reindex`.
 */

/** Longest token kept; longer runs are cut (nobody types 40 letters to find something). */
export const MAX_TOKEN_LENGTH = 40;
/** Most distinct tokens indexed per item. */
export const MAX_TERMS_PER_ITEM = 400;
/** Most words of a query that count; the rest are ignored. */
export const MAX_QUERY_WORDS = 8;

/** How much a match in each field weighs in the relevance score (a term's weight is the sum). */
export const FIELD_WEIGHTS = { title: 16, tags: 8, meta: 4, filename: 2, description: 1 } as const;
export type Field = keyof typeof FIELD_WEIGHTS;

/** Lower case, accents and other marks removed, compatibility forms unified (ﬁ → fi, ² → 2). */
export function fold(text: string): string {
  // Stryker disable next-line Regex: removing each mark or each run of marks leaves the same text
  return text.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase();
}

/** The searchable words of a text: runs of letters and digits after folding. */
export function tokens(text: string): string[] {
  const out: string[] = [];
  for (const m of fold(text).matchAll(/[\p{L}\p{N}]+/gu)) out.push(m[0].slice(0, MAX_TOKEN_LENGTH));
  return out;
}

/** An item's fields as the index sees them. */
export interface IndexableItem {
  title: string;
  tags: string[];
  filename: string;
  description: string;
  meta: Record<string, string | number | boolean>;
}

/** Every term of an item with its weight (the sum of the weights of the fields it occurs in). */
export function termWeights(item: IndexableItem): Map<string, number> {
  const fields: [Field, string][] = [
    ['title', item.title],
    ['tags', item.tags.join(' ')],
    ['meta', Object.values(item.meta).filter((v) => typeof v === 'string').join(' ')],
    ['filename', item.filename.replace(/\.[^.]{1,8}$/, '')],
    ['description', item.description],
  ];
  const weights = new Map<string, number>();
  for (const [field, text] of fields) {
    const seen = new Set(tokens(text));
    for (const t of seen) {
      if (!weights.has(t) && weights.size >= MAX_TERMS_PER_ITEM) continue;
      weights.set(t, (weights.get(t) ?? 0) + FIELD_WEIGHTS[field]);
    }
  }
  return weights;
}

/**
 * The score of an item in a term's set: the term's weight plus its creation time in ms × 1e-13 (under
 * one point until the year 2286), so that relevance ties go to the newest without a further
 * intersection with the creation order. Sums over several terms keep that order.
 */
export function termScore(weight: number, createdAtMs: number): number {
  return weight + createdAtMs * 1e-13;
}

/** A parsed query: whole words that must all match, and the last word matched as a prefix. */
export interface ParsedQuery {
  words: string[];
  prefix: string | null;
}

/**
 * Parses a search box: words are folded like the index; the last word is a prefix (type-ahead)
 * unless the text ends with a space. A query with no letters or digits has no words.
 */
export function parseQuery(q: string): ParsedQuery {
  const words = [...new Set(tokens(q))].slice(0, MAX_QUERY_WORDS);
  if (words.length === 0) return { words: [], prefix: null };
  if (/\s$/.test(q)) return { words, prefix: null };
  const prefix = words.pop()!;
  return { words, prefix };
}

const SORT_ALPHABET = ' 0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * The title as it sorts: folded letters and digits, words joined by one space (its first 10
 * characters make `titleSortKey`; the rest orders titles that share them), at most 200 characters.
 */
export function titleSortText(title: string): string {
  return tokens(title).join(' ').slice(0, 200);
}

/**
 * A number that orders titles alphabetically by their first 10 folded letters and digits (base 37;
 * 37^10 < 2^53, so it is exact as a Redis score). Titles that share them are ordered by the rest
 * of `titleSortText` when the catalogue pages (see SEARCH_LUA in libs/state).
 */
export function titleSortKey(title: string): number {
  const chars = titleSortText(title);
  let key = 0;
  for (let i = 0; i < 10; i++) {
    const c = chars[i];
    // Stryker disable next-line ConditionalExpression: `c === undefined` as false: indexOf(undefined) looks for the text "undefined", not in the alphabet, so v is 0 as well
    const v = c === undefined ? 0 : Math.max(0, SORT_ALPHABET.indexOf(c));
    key = key * 37 + (c !== undefined && v === 0 && c !== ' ' ? 36 : v);
  }
  return key;
}
