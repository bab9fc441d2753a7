/**
 * The catalogue against a real Redis with a generated corpus: ranking, every-word and prefix
 * matching, accent folding, filters, sorts, paging while items are added, facets, index consistency
 * on edit and delete, rebuild; and through HTTP: bad input and a catalog that is down.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { buildCatalog, CatalogSearch } from '@nondivy/catalog';
import { loadCatalogConfig, loadGatewayConfig } from '@nondivy/config';
import type { Item, ItemKind, SearchQuery } from '@nondivy/contracts';
import { buildGateway, createGatewayDeps } from '@nondivy/gateway';
import { createLogger } from '@nondivy/log';
import { fold } from '@nondivy/search';
import { createRedis, waitForRedis, type Redis } from '@nondivy/state';
import type { Library } from '@nondivy/storage';
import type { FastifyInstance } from 'fastify';
import { bearer, listenOnLoopback, login, upload } from './helpers/http.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';

const log = createLogger('test', 'silent');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const admin = { username: 'admin', role: 'admin' as const };

// A realistic corpus: titles built from word lists, kinds and tags that go with them.
const WORDS = ['shadow', 'river', 'night', 'garden', 'empire', 'winter', 'silver', 'journey', 'ocean', 'fire', 'stone', 'dream', 'city', 'forest', 'storm', 'light', 'song', 'mountain', 'secret', 'star'];
const TAGS = ['scifi', 'fantasy', 'classic', 'jazz', 'rock', 'documentary', 'kids', 'history', 'poetry', 'linux'];
const KINDS: ItemKind[] = ['ebook', 'audio', 'video', 'image', 'document', 'software', 'other'];
const EXT: Record<ItemKind, string> = { ebook: 'epub', audio: 'mp3', video: 'mkv', image: 'png', document: 'pdf', software: 'deb', other: 'bin' };

let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;

let redis: TestRedis;
let client: Redis;
let library: Library;
let search: CatalogSearch;
let blobs: { path: string; cleanup(): void };
const corpus: Item[] = [];

async function add(title: string, kind: ItemKind, tags: string[], description = ''): Promise<Item> {
  const item = await library.ingest(Readable.from([randomBytes(16 + Math.floor(rand() * 4000))]), { title, kind, tags, description, filename: `${title.slice(0, 40)}.${EXT[kind]}` }, admin);
  corpus.push(item);
  return item;
}

/** A title as the catalogue sorts it: folded letters and digits, words joined by one space. */
const sortText = (t: string) => fold(t).replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
const q = (query: Partial<SearchQuery>) => search.search({ limit: 50, scope: 'local', ...query } as SearchQuery);
const all = async (query: Partial<SearchQuery>) => {
  const out: Item[] = [];
  let cursor: string | undefined;
  do {
    const page = await q({ ...query, limit: 200, cursor });
    out.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
};

before(async () => {
  redis = await startRedis();
  blobs = tempDir();
  client = createRedis(redis.url, log);
  await waitForRedis(client, log);
  const config = loadGatewayConfig({ NONDIVY_DATA_DIR: blobs.path, REDIS_URL: redis.url });
  const deps = await createGatewayDeps(config, log, client);
  await deps.blobs.init();
  library = deps.library;
  search = new CatalogSearch(client);
  // Hand-made items for ranking and folding checks, then 2,000 generated ones.
  await add('Dune', 'ebook', ['scifi', 'classic'], 'Desert planet, spice and politics.');
  await add('Dune Messiah', 'ebook', ['scifi']);
  await add('Arrakis travel notes', 'document', ['scifi'], 'A guide to the dune seas of the desert planet.');
  await add('Les Misérables', 'ebook', ['classic'], 'Victor Hugo');
  await add('Café del Mar — Volumen Uno', 'audio', ['jazz']);
  await add('ÜBER DEN WOLKEN', 'audio', ['rock']);
  await add('Niño y el mar', 'video', ['kids']);
  for (let i = 0; i < 2000; i++) {
    const kind = pick(KINDS);
    const title = `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)} ${i}`.replace(/^./, (c) => c.toUpperCase());
    await add(title, kind, [...new Set([pick(TAGS), pick(TAGS)])], rand() < 0.3 ? `about ${pick(WORDS)}` : '');
  }
});

after(async () => {
  client?.disconnect();
  await redis?.close();
  blobs?.cleanup();
});

describe('search', () => {
  it('ranks title matches above matches in other fields, then newest first', async () => {
    const res = await q({ q: 'dune' });
    assert.deepEqual(res.items.map((i) => i.title).slice(0, 3), ['Dune Messiah', 'Dune', 'Arrakis travel notes']);
    assert.equal(res.total, 3);
  });

  it('requires every word, and matches the last one as a prefix (type-ahead)', async () => {
    assert.deepEqual((await q({ q: 'dune mess' })).items.map((i) => i.title), ['Dune Messiah']);
    assert.deepEqual((await q({ q: 'dune mess ' })).items, [], 'a finished word is not a prefix');
    const river = await all({ q: 'river sto' });
    const expected = corpus.filter((i) => {
      const words = fold(`${i.title} ${i.tags.join(' ')} ${i.description} ${i.filename}`).split(/[^\p{L}\p{N}]+/u);
      return words.includes('river') && words.some((w) => w.startsWith('sto'));
    });
    assert.ok(expected.length > 10);
    assert.deepEqual(new Set(river.map((i) => i.id)), new Set(expected.map((i) => i.id)));
  });

  it('ignores case and accents on both sides', async () => {
    assert.deepEqual((await q({ q: 'miserables' })).items.map((i) => i.title), ['Les Misérables']);
    assert.deepEqual((await q({ q: 'CAFÉ' })).items.map((i) => i.title), ['Café del Mar — Volumen Uno']);
    assert.deepEqual((await q({ q: 'uber wolken' })).items.map((i) => i.title), ['ÜBER DEN WOLKEN']);
    assert.deepEqual((await q({ q: 'nino' })).items.map((i) => i.title), ['Niño y el mar']);
    assert.deepEqual((await q({ q: 'victor hugo' })).items.map((i) => i.title), ['Les Misérables'], 'descriptions are searched');
  });

  it('filters by kind and by every given tag', async () => {
    const res = await all({ kind: 'audio', tag: ['jazz', 'rock'] });
    const expected = corpus.filter((i) => i.kind === 'audio' && i.tags.includes('jazz') && i.tags.includes('rock'));
    assert.ok(expected.length > 0);
    assert.deepEqual(new Set(res.map((i) => i.id)), new Set(expected.map((i) => i.id)));
    const ebooks = await all({ q: 'shadow', kind: 'ebook' });
    assert.ok(ebooks.length > 0 && ebooks.every((i) => i.kind === 'ebook' && /shadow/i.test(`${i.title} ${i.description}`)));
  });

  it('sorts by new, title, size and popular', async () => {
    const byNew = (await q({ limit: 100 })).items;
    assert.deepEqual(byNew.map((i) => i.id), [...corpus].reverse().slice(0, 100).map((i) => i.id));
    const byTitle = (await q({ sort: 'title', kind: 'video', limit: 200 })).items.map((i) => sortText(i.title));
    assert.deepEqual(byTitle, [...byTitle].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), 'alphabetical by the whole title');
    const bySize = (await q({ sort: 'size', limit: 200 })).items.map((i) => i.size);
    assert.deepEqual(bySize, [...bySize].sort((a, b) => b - a));
    const target = corpus[500]!;
    for (let i = 0; i < 3; i++) await library.countDownload(target.id);
    assert.equal((await q({ sort: 'popular', limit: 1 })).items[0]!.id, target.id);
  });

  it('orders titles that share their first ten characters by the rest, across pages', async () => {
    // 40 titles equal in their first ten letters, added in a shuffled order, plus one that sorts
    // between them by its eleventh character: pages of 7 follow one alphabetical order.
    const numbers = [...Array(40).keys()].sort(() => rand() - 0.5);
    for (const n of numbers) await add(`Field Note ${String(n).padStart(2, '0')} — tie`, 'image', ['ties']);
    await add('Field notebook', 'image', ['ties']);
    const titles: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await q({ sort: 'title', tag: ['ties'], limit: 7, cursor });
      titles.push(...page.items.map((i) => i.title));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const expected = [...[...Array(40).keys()].map((n) => `Field Note ${String(n).padStart(2, '0')} — tie`), 'Field notebook'];
    assert.deepEqual(titles, expected);
    // The same without a filter (the whole library by title), around the group.
    const library = await all({ sort: 'title' });
    const everything = library.map((i) => i.title);
    const at = everything.indexOf('Field Note 00 — tie');
    assert.deepEqual(everything.slice(at, at + 41), expected);
    assert.equal(new Set(library.map((i) => i.id)).size, library.length, 'no item twice');
    assert.equal(library.length, (await q({})).total, 'every item once');
    assert.deepEqual(everything.map(sortText), [...everything.map(sortText)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), 'the whole library alphabetical');
  });

  it('a group of tied titles larger than the limit is paged in id order, not read whole on every page', async () => {
    // The same 41 tied titles, with a limit of 10: a flood of one title costs each page its own
    // rows (by position), never the whole group.
    const capped = new CatalogSearch(client, { titleGroupMax: 10 });
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await capped.search({ sort: 'title', tag: ['ties'], limit: 7, cursor, scope: 'local' } as SearchQuery);
      ids.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    assert.equal(ids.length, 41);
    assert.deepEqual(ids, [...ids].sort(), 'id order within the group');
    // The library browsed by title with that limit: every item once.
    const seen: string[] = [];
    cursor = undefined;
    do {
      const page = await capped.search({ sort: 'title', limit: 97, cursor, scope: 'local' } as SearchQuery);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, 'no item twice');
    assert.equal(seen.length, (await q({})).total, 'every item');
  });

  it('pages without duplicates or gaps while items are added', async () => {
    const before = new Set(corpus.map((i) => i.id));
    const seen: string[] = [];
    let cursor: string | undefined;
    let added = 0;
    do {
      const page = await q({ limit: 97, cursor });
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor ?? undefined;
      if (added < 5) {
        await add(`Late arrival ${added++}`, 'other', []);
      }
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, 'no duplicates');
    for (const id of before) assert.ok(seen.includes(id), 'no gaps');
    // Also for a ranked search with a filter.
    const ranked: string[] = [];
    cursor = undefined;
    do {
      const page = await q({ q: 'sto', limit: 13, cursor });
      ranked.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    assert.equal(new Set(ranked).size, ranked.length);
    assert.equal(ranked.length, (await q({ q: 'sto' })).total);
  });

  it('never shows a deleted item, and follows edits at once', async () => {
    const item = await add('Zyzzyva chronicles', 'ebook', ['scifi']);
    assert.equal((await q({ q: 'zyzzyva' })).total, 1);
    await library.update(item.id, { title: 'Quokka chronicles', tags: ['kids'], filename: 'quokka.epub' }, admin);
    assert.equal((await q({ q: 'zyzzyva' })).total, 0, 'old words are gone');
    assert.deepEqual((await q({ q: 'quokka', tag: ['kids'] })).items.map((i) => i.id), [item.id]);
    await library.remove(item.id, admin);
    assert.equal((await q({ q: 'quokka' })).total, 0);
    assert.equal((await all({ tag: ['kids'] })).some((i) => i.id === item.id), false);
  });

  it('answers odd queries with a correct result, never an error', async () => {
    for (const odd of ['!!!', '...', '🦄🦄', '*', '.*', '[a-z]*', '?', "'; DROP TABLE items;--", '%', '\\', '\u0000']) {
      const res = await q({ q: odd });
      assert.deepEqual(res.items, [], JSON.stringify(odd));
    }
    assert.equal((await q({ q: 'drop table' })).total, 0);
  });
});

describe('facets', () => {
  const count = (items: Item[]) => {
    const kinds: Record<string, number> = {};
    const tags = new Map<string, number>();
    for (const i of items) {
      kinds[i.kind] = (kinds[i.kind] ?? 0) + 1;
      for (const t of i.tags) tags.set(t, (tags.get(t) ?? 0) + 1);
    }
    return { kinds, tags };
  };

  it('counts kinds and tags over the whole library', async () => {
    const everything = await all({});
    const facets = await search.facets({ limit: 50, scope: 'local' } as SearchQuery);
    const expected = count(everything);
    assert.equal(facets.total, everything.length);
    assert.deepEqual(facets.kinds, expected.kinds);
    for (const { tag, count: n } of facets.tags) assert.equal(n, expected.tags.get(tag), tag);
    assert.equal(facets.tags[0]!.count, Math.max(...expected.tags.values()));
  });

  it('counts kinds and tags over the matches of a query', async () => {
    const matches = await all({ q: 'sto', tag: ['history'] });
    const facets = await search.facets({ q: 'sto', tag: ['history'], limit: 50, scope: 'local' } as SearchQuery);
    const expected = count(matches);
    assert.equal(facets.total, matches.length);
    assert.deepEqual(facets.kinds, expected.kinds);
    assert.equal(facets.tags.find((t) => t.tag === 'history')?.count, matches.length);
  });
});

describe('rebuilding the index', () => {
  it('gives the same answers after a rebuild', async () => {
    const probes: Partial<SearchQuery>[] = [{ q: 'dune' }, { q: 'river sto', kind: 'audio' }, { tag: ['jazz'], sort: 'title' }, { sort: 'size', limit: 30 }];
    const beforeRebuild = await Promise.all(probes.map((p) => q(p)));
    const indexed = await search.reindex();
    assert.equal(indexed, (await all({})).length);
    const afterRebuild = await Promise.all(probes.map((p) => q(p)));
    assert.deepEqual(afterRebuild.map((r) => r.items.map((i) => i.id)), beforeRebuild.map((r) => r.items.map((i) => i.id)));
  });
});

describe('npm run reindex', () => {
  it('rebuilds the index of the site named by REDIS_URL and reports how many items', () => {
    const res = spawnSync(process.execPath, ['dist/reindex.mjs'], { cwd: ROOT, env: { PATH: process.env.PATH, REDIS_URL: redis.url }, encoding: 'utf8', timeout: 60_000 });
    assert.equal(res.status, 0, res.stderr);
    const line = res.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; items?: number }).find((l) => l.msg === 'index rebuilt');
    assert.ok(line && line.items === corpus.length - 1, `rebuilt ${line?.items} of ${corpus.length - 1}`);
  });
});

describe('over HTTP', () => {
  let gateway: FastifyInstance;
  let catalog: FastifyInstance;
  let api: string;
  let token: string;

  before(async () => {
    catalog = await buildCatalog(loadCatalogConfig({}), { log, redis: client, blobs: (await createGatewayDeps(loadGatewayConfig({ NONDIVY_DATA_DIR: blobs.path }), log, client)).blobs });
    const catalogUrl = await listenOnLoopback(catalog);
    const config = loadGatewayConfig({ NONDIVY_DATA_DIR: blobs.path, REDIS_URL: redis.url, NONDIVY_CATALOG_URL: catalogUrl, NONDIVY_ADMIN_PASSWORD: 'admin-password' });
    const deps = await createGatewayDeps(config, log, client);
    await deps.auth.bootstrapAdmin(config.auth.adminPassword);
    gateway = await buildGateway(config, deps);
    api = `${await listenOnLoopback(gateway)}/api/v1`;
    token = await login(api, 'admin', 'admin-password');
  });

  after(async () => {
    await gateway?.close();
    await catalog?.close();
  });

  it('searches and counts facets through the gateway', async () => {
    const res = (await (await fetch(`${api}/library?q=dune%20mes`)).json()) as { items: Item[]; total: number };
    assert.deepEqual(res.items.map((i) => i.title), ['Dune Messiah']);
    const facets = (await (await fetch(`${api}/library/facets?kind=ebook`)).json()) as { kinds: Record<string, number> };
    assert.deepEqual(Object.keys(facets.kinds), ['ebook']);
    const multiTag = (await (await fetch(`${api}/library?tag=scifi&tag=classic&limit=200`)).json()) as { items: Item[] };
    assert.ok(multiTag.items.some((i) => i.title === 'Dune'));
    assert.ok(multiTag.items.every((i) => i.tags.includes('scifi') && i.tags.includes('classic')), 'repeated tags all apply');
  });

  it('refuses bad parameters with 400, never 500', async () => {
    const bad = ['q=' + 'x'.repeat(10_000), 'limit=-1', 'limit=1e9', 'limit=0', 'cursor=forged', `cursor=${Buffer.from('[1e400,"x"]').toString('base64url')}`, 'sort=random', 'kind=weapon', 'tag=' + 't'.repeat(100), 'cursor=' + Buffer.from('{"__proto__":1}').toString('base64url')];
    for (const query of bad) {
      const res = await fetch(`${api}/library?${query}`);
      assert.equal(res.status, 400, query.slice(0, 40));
      assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    }
  });

  it('answers 503 for searches while the catalog is down; uploads and downloads keep working', async () => {
    await catalog.close();
    const t0 = Date.now();
    const res = await fetch(`${api}/library?q=dune`);
    assert.equal(res.status, 503);
    assert.ok(Date.now() - t0 < 2500);
    assert.equal((await fetch(`${api}/library/facets`)).status, 503);
    const up = await upload(api, token, Buffer.from('still works'), 'still.txt');
    assert.equal(up.status, 201);
    const { id } = (await up.json()) as { id: string };
    assert.equal(await (await fetch(`${api}/library/${id}/content`, { headers: bearer(token) })).text(), 'still works');
  });
});
