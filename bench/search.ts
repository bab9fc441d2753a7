/**
 * Catalogue benchmark: commit ITEMS items (item + index in one transaction each, 32 at a time), then
 * query latency p50/p99 over distinct 1-, 2- and 3-word queries with and without filters (the
 * catalog's search in-process, each query new to the cache), then queries per second through the
 * gateway's HTTP API with 32 concurrent clients.
 */
import { randomBytes } from 'node:crypto';
import { CatalogSearch } from '@nondivy/catalog';
import type { SearchQuery } from '@nondivy/contracts';
import { createLogger } from '@nondivy/log';
import { createRedis, RedisLibraryState, waitForRedis } from '@nondivy/state';
import { keys } from '@nondivy/state/keys';
import { newItemId } from '@nondivy/storage';

export const WORDS = 'shadow river night garden empire winter silver journey ocean fire stone dream city forest storm light song mountain secret star north tale blood glass iron moon queen king road house war love time world heart sky rain wolf child last black white red green blue golden lost hidden broken'.split(' ');
const TAGS = ['scifi', 'fantasy', 'classic', 'jazz', 'rock', 'documentary', 'kids', 'history', 'poetry', 'linux', 'cooking', 'travel'];
const KINDS = ['ebook', 'audio', 'video', 'image', 'document', 'software', 'other'] as const;
export const pick = <T>(xs: readonly T[]) => xs[Math.floor(Math.random() * xs.length)]!;

export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

/**
 * Commits `count` items, 32 at a time, through the same transaction an upload ends with (lease, blob
 * reference, item, index, event): three-word titles, a kind, one or two tags. The items share one
 * made-up SHA-256 and blob key; none has bytes.
 */
export async function commitItems(state: RedisLibraryState, count: number): Promise<void> {
  const sha = randomBytes(32).toString('hex');
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < count) {
        const n = next++;
        const lease = `bench-${n}`;
        await state.beginUpload(lease, '{}', 60_000);
        const now = new Date(Date.now() - (count - n) * 1000).toISOString();
        await state.commitUpload({
          leaseId: lease,
          candidateKey: `objects/00/${lease}`,
          item: {
            id: newItemId(),
            title: `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)}`,
            kind: pick(KINDS),
            folder: '',
            tags: [...new Set([pick(TAGS), pick(TAGS)])],
            description: Math.random() < 0.3 ? `${pick(WORDS)} ${pick(WORDS)}` : '',
            filename: `file-${n}.bin`,
            contentType: 'application/octet-stream',
            size: Math.floor(Math.random() * 1e9),
            sha256: sha,
            createdAt: now,
            updatedAt: now,
            uploadedBy: 'bench',
            downloads: 0,
            meta: {},
          },
        });
      }
    }),
  );
}

export interface BenchProcesses {
  startRedis(): Promise<string>;
  startStandalone(env: Record<string, string>): Promise<{ port: number }>;
}

export async function searchBench(work: string, count: number, processes: BenchProcesses) {
  const log = createLogger('bench', 'silent');
  const url = await processes.startRedis();
  const redis = createRedis(url, log);
  await waitForRedis(redis, log);
  const state = new RedisLibraryState(redis);

  // 1. Commit items: the same transaction an upload ends with (lease, blob reference, item, index, event).
  const t0 = performance.now();
  await commitItems(state, count);
  const indexRate = count / ((performance.now() - t0) / 1000);

  // 2. Latency of distinct queries, in-process.
  const search = new CatalogSearch(redis);
  const rows: string[][] = [];
  for (const words of [1, 2, 3]) {
    for (const filtered of [false, true]) {
      const times: number[] = [];
      for (let i = 0; i < 300; i++) {
        const q = Array.from({ length: words }, () => pick(WORDS)).join(' ');
        const query = { q: filtered ? q : q.slice(0, -1), limit: 50, scope: 'local', ...(filtered ? { kind: pick(KINDS), tag: [pick(TAGS)] } : {}) } as SearchQuery;
        const t = performance.now();
        await search.search(query);
        times.push(performance.now() - t);
      }
      rows.push([`${words} word${words > 1 ? 's' : ''}${filtered ? ' + kind + tag' : ' (last as prefix)'}`, percentile(times, 50).toFixed(2), percentile(times, 99).toFixed(2)]);
    }
  }
  // Browsing by title, page after page (titles of three words from a short list: they share their
  // first ten letters in groups of hundreds, which each page orders by the whole title).
  {
    const times: number[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 300; i++) {
      const t = performance.now();
      const page = await search.search({ limit: 50, scope: 'local', sort: 'title', cursor } as SearchQuery);
      times.push(performance.now() - t);
      cursor = page.nextCursor ?? undefined;
      if (!cursor) break;
    }
    rows.push([`browse by title, ${times.length} pages of 50 in a row`, percentile(times, 50).toFixed(2), percentile(times, 99).toFixed(2)]);
  }

  // 3. Queries per second through the gateway, 32 concurrent clients, for 5 s. The items above have
  // no bytes: mark enrichment as caught up, so the catalog's worker does not chase them meanwhile.
  await redis.xgroup('CREATE', keys.libraryEvents, keys.enrichmentGroup, '$', 'MKSTREAM');
  const { port: httpPort } = await processes.startStandalone({ REDIS_URL: url, NONDIVY_DATA_DIR: `${work}/data-search` });
  await new Promise((r) => setTimeout(r, 1000));
  const api = `http://127.0.0.1:${httpPort}/api/v1/library`;
  let done = 0;
  let errors = 0;
  const until = performance.now() + 5000;
  const queries = Array.from({ length: 200 }, () => `${pick(WORDS)} ${pick(WORDS).slice(0, 3)}`);
  await Promise.all(
    Array.from({ length: 32 }, async (_, c) => {
      let i = c;
      while (performance.now() < until) {
        const res = await fetch(`${api}?q=${encodeURIComponent(queries[i++ % queries.length]!)}&limit=20`);
        await res.arrayBuffer();
        if (res.status === 200) done++;
        else errors++;
      }
    }),
  );
  const qps = done / 5;
  redis.disconnect();
  return { indexRate, rows, qps, errors };
}

