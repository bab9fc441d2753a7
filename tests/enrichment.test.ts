/**
 * Enrichment against a real Redis and blob store: metadata of a real MP3 (ID3) and EPUB built here,
 * image dimensions, a content type sniffed from the bytes, unparseable files kept, and the worker's
 * guarantees — no lost work across a restart, poison events parked after a few tries. Then hostile
 * files against the standalone server: the event loop stays free while they are enriched, and the
 * limits (deadline, field length, zip entries) each cut off what breaks them and nothing else.
 */
import assert from 'node:assert/strict';
import { PassThrough, Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { CatalogSearch, EnrichmentWorker } from '@nondivy/catalog';
import { loadGatewayConfig } from '@nondivy/config';
import type { Item, SearchQuery } from '@nondivy/contracts';
import { AppError } from '@nondivy/errors';
import { createGatewayDeps, type GatewayDeps } from '@nondivy/gateway';
import { createLogger } from '@nondivy/log';
import { pino } from 'pino';
import { createRedis, RedisLibraryState, waitForRedis, type Redis } from '@nondivy/state';
import { keys } from '@nondivy/state/keys';
import type { BlobStore } from '@nondivy/storage';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { epub, mp3, png } from './helpers/media.js';
import { buriedContainerEpub, epubWithOpf, HOSTILE_AUTHOR, hostileOpfs, longTitleEpub } from './helpers/hostile-epub.js';
import { bearer, login, upload as httpUpload } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';

const admin = { username: 'admin', role: 'admin' as const };
const quiet = createLogger('test', 'silent');

let redis: TestRedis;
let client: Redis;
let deps: GatewayDeps;
let dir: { path: string; cleanup(): void };
let state: RedisLibraryState;

/** A logger whose lines the test can read. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

const upload = (data: Buffer, filename: string, contentType?: string) => deps.library.ingest(Readable.from([data]), { filename, contentType }, admin);

async function until<T>(probe: () => Promise<T | undefined | null | false>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  redis = await startRedis();
  dir = tempDir();
  client = createRedis(redis.url, quiet);
  await waitForRedis(client, quiet);
  deps = await createGatewayDeps(loadGatewayConfig({ NONDIVY_DATA_DIR: dir.path, REDIS_URL: redis.url }), quiet, client);
  await deps.blobs.init();
  state = new RedisLibraryState(client);
});

after(async () => {
  client?.disconnect();
  await redis?.close();
  dir?.cleanup();
});

describe('enrichment', () => {
  let worker: EnrichmentWorker;
  const captured = capturingLogger();

  before(() => {
    worker = new EnrichmentWorker({ redis: client, blobs: deps.blobs, log: captured.log, blockMs: 200 });
    worker.start();
  });
  after(() => worker.stop());

  const enriched = (id: string) => until(async () => {
    const item = await state.getItem(id);
    return item && Object.keys(item.meta).length > 0 ? item : undefined;
  });

  it('reads ID3 tags of an MP3, and makes them searchable', async () => {
    const item = await upload(mp3({ title: 'Blue in Green', artist: 'Miles Davis', album: 'Kind of Blue', track: '3', year: '1959' }), 'track03.mp3');
    const done = await enriched(item.id);
    assert.equal(done.meta.artist, 'Miles Davis');
    assert.equal(done.meta.album, 'Kind of Blue');
    assert.equal(done.meta.title, 'Blue in Green');
    assert.equal(done.meta.track, 3);
    assert.equal(done.meta.year, 1959);
    assert.ok(typeof done.meta.duration === 'number' && done.meta.duration > 0.5 && done.meta.duration < 2, `duration ${done.meta.duration}`);
    const found = await new CatalogSearch(client).search({ q: 'miles davis', limit: 10, scope: 'local' } as SearchQuery);
    assert.deepEqual(found.items.map((i: Item) => i.id), [item.id]);
  });

  it('reads title, author and language of an EPUB from its package document', async () => {
    const item = await upload(epub({ title: 'Le Petit Prince', author: 'Antoine de Saint-Exupéry', language: 'fr' }), 'book.epub');
    const done = await enriched(item.id);
    assert.deepEqual({ ...done.meta }, { title: 'Le Petit Prince', author: 'Antoine de Saint-Exupéry', language: 'fr' });
    const found = await new CatalogSearch(client).search({ q: 'exupery', limit: 10, scope: 'local' } as SearchQuery);
    assert.deepEqual(found.items.map((i: Item) => i.id), [item.id]);
  });

  it('reads image dimensions, and sniffs the type when the client said nothing useful', async () => {
    const item = await upload(png(640, 480), 'scan', 'application/octet-stream');
    assert.equal(item.kind, 'other');
    const done = await enriched(item.id);
    assert.deepEqual({ width: done.meta.width, height: done.meta.height }, { width: 640, height: 480 });
    assert.equal(done.contentType, 'image/png');
    assert.equal(done.kind, 'image');
  });

  it('keeps an item it cannot parse, without meta, and logs why', async () => {
    const item = await upload(Buffer.from('this is not a zip at all'), 'broken.epub');
    await until(async () => captured.lines.some((l) => l.id === item.id && /could not be parsed/.test(String(l.msg))));
    const kept = await state.getItem(item.id);
    assert.ok(kept);
    assert.deepEqual(kept.meta, {});
  });
});

describe('enrichment worker guarantees', () => {
  /** A blob store whose reads fail as if the store were down, `failures` times (Infinity: always). */
  function flakyStore(failures: number): BlobStore {
    let left = failures;
    const store: BlobStore = Object.create(deps.blobs);
    store.read = async (key, range) => {
      if (left-- > 0) throw new AppError('unavailable', 'injected: blob store down');
      return deps.blobs.read(key, range);
    };
    return store;
  }

  it('loses no work across a worker that fails and stops: another claims it and finishes', async () => {
    await client.xgroup('SETID', keys.libraryEvents, keys.enrichmentGroup, '$');
    const first = new EnrichmentWorker({ redis: client, blobs: flakyStore(Infinity), log: quiet, blockMs: 100, reclaimAfterMs: 400, maxAttempts: 10 });
    first.start();
    const item = await upload(epub({ title: 'Retried', author: 'Someone', language: 'en' }), 'retry.epub');
    await new Promise((r) => setTimeout(r, 300));
    await first.stop(); // the event was delivered to it and never acknowledged
    assert.deepEqual((await state.getItem(item.id))!.meta, {});
    const second = new EnrichmentWorker({ redis: client, blobs: deps.blobs, log: quiet, blockMs: 100, reclaimAfterMs: 400 });
    second.start();
    try {
      const done = await until(async () => {
        const i = await state.getItem(item.id);
        return i?.meta.title ? i : undefined;
      });
      assert.equal(done.meta.author, 'Someone');
    } finally {
      await second.stop();
    }
  });

  it('parks an event that keeps failing, with its reason', async () => {
    await client.xgroup('SETID', keys.libraryEvents, keys.enrichmentGroup, '$');
    const { log, lines } = capturingLogger();
    const worker = new EnrichmentWorker({ redis: client, blobs: flakyStore(Infinity), log, blockMs: 100, reclaimAfterMs: 200, maxAttempts: 2 });
    worker.start();
    try {
      const item = await upload(mp3({ title: 'Poison', artist: 'X', album: 'Y', track: '1', year: '2000' }), 'poison.mp3');
      const parked = await until(async () => client.hget(keys.enrichmentParked, item.id), 8000);
      assert.match(JSON.parse(parked).reason, /injected: blob store down/);
      assert.equal(JSON.parse(parked).attempts, 2);
      assert.ok(lines.some((l) => l.msg === 'enrichment parked after repeated failures' && l.id === item.id));
      const pending = (await client.xpending(keys.libraryEvents, keys.enrichmentGroup)) as [number, ...unknown[]];
      assert.equal(pending[0], 0, 'nothing left pending');
    } finally {
      await worker.stop();
    }
  });
});

describe('enrichment limits', () => {
  /** Points the consumer group past every event so far (creating it on a fresh Redis). */
  async function skipPastEvents() {
    await client.xgroup('CREATE', keys.libraryEvents, keys.enrichmentGroup, '$', 'MKSTREAM').catch(() => undefined);
    await client.xgroup('SETID', keys.libraryEvents, keys.enrichmentGroup, '$');
  }

  it('kills an extraction past its deadline, logs it, and serves the next item with a fresh thread', async () => {
    await skipPastEvents();
    const { log, lines } = capturingLogger();
    const worker = new EnrichmentWorker({ redis: client, blobs: deps.blobs, log, blockMs: 100, extractTimeoutMs: 800 });
    worker.start();
    try {
      // 300 KB of 0xff claimed as MP3: the audio parser hunts for frame syncs for well over 10 s.
      const slow = await upload(Buffer.alloc(300_000, 0xff), 'slow.mp3', 'audio/mpeg');
      const next = await upload(epub({ title: 'Next in line', author: 'Someone', language: 'en' }), 'next.epub');
      const t0 = Date.now();
      const done = await until(async () => {
        const i = await state.getItem(next.id);
        return i?.meta.title ? i : undefined;
      }, 8000);
      assert.equal(done.meta.author, 'Someone');
      assert.ok(Date.now() - t0 < 5000, `the next item waited ${Date.now() - t0} ms`);
      const reason = lines.find((l) => l.id === slow.id && /could not be parsed/.test(String(l.msg)));
      assert.match(String(reason?.reason), /longer than 800 ms/);
      assert.ok(lines.some((l) => /past its deadline/.test(String(l.msg))));
      assert.deepEqual((await state.getItem(slow.id))!.meta, {}, 'the slow item is kept, without meta');
      // Both events acknowledged (the next item's just after its update), none left to retry: a timed-out
      // event left pending would stay so until it is reclaimed, 30 s later.
      const pending = async () => ((await client.xpending(keys.libraryEvents, keys.enrichmentGroup)) as [number, ...unknown[]])[0];
      await until(async () => (await pending()) === 0, 2000).catch(() => undefined);
      assert.equal(await pending(), 0, 'the timed-out event is acknowledged, not retried');
    } finally {
      await worker.stop();
    }
  });

  it('closes the blob stream of an extraction stalled past its deadline', async () => {
    await skipPastEvents();
    // The first read never yields a byte: the extraction waits until its deadline.
    let stalled: PassThrough | undefined;
    const store: BlobStore = Object.create(deps.blobs);
    store.read = async (key, range) => (stalled ? deps.blobs.read(key, range) : (stalled = new PassThrough()));
    const { log, lines } = capturingLogger();
    const worker = new EnrichmentWorker({ redis: client, blobs: store, log, blockMs: 100, extractTimeoutMs: 500 });
    worker.start();
    try {
      const item = await upload(epub({ title: 'Stalled', author: 'Nobody', language: 'en' }), 'stalled.epub');
      const line = await until(async () => lines.find((l) => l.id === item.id && /could not be parsed/.test(String(l.msg))));
      assert.match(String(line.reason), /longer than 500 ms/);
      assert.ok(stalled?.destroyed, 'the stalled blob stream was closed with its thread');
    } finally {
      stalled?.destroy(); // lets a worker without a deadline stop
      await worker.stop();
    }
  });

  it('leaves out a field longer than the limit and keeps the others, saying why', async () => {
    await skipPastEvents();
    const { log, lines } = capturingLogger();
    const worker = new EnrichmentWorker({ redis: client, blobs: deps.blobs, log, blockMs: 100 });
    worker.start();
    try {
      const item = await upload(longTitleEpub(20_000), 'long-title.epub');
      const done = await until(async () => {
        const i = await state.getItem(item.id);
        return i?.meta.author ? i : undefined;
      });
      assert.deepEqual({ ...done.meta }, { author: HOSTILE_AUTHOR, language: 'en' });
      const line = await until(async () => lines.find((l) => l.id === item.id && l.dropped));
      assert.match(String((line.dropped as Record<string, string>).title), /longer than/);
      // Under the limit, the same title is kept (cut to the stored length).
      const ok = await upload(longTitleEpub(2000), 'long-title-ok.epub');
      const kept = await until(async () => {
        const i = await state.getItem(ok.id);
        return i?.meta.title ? i : undefined;
      });
      assert.equal(String(kept.meta.title).length, 300);
    } finally {
      await worker.stop();
    }
  });

  it('stops looking for the package document after 10,000 zip entries', async () => {
    await skipPastEvents();
    const { log, lines } = capturingLogger();
    const worker = new EnrichmentWorker({ redis: client, blobs: deps.blobs, log, blockMs: 100 });
    worker.start();
    try {
      const near = await upload(buriedContainerEpub(1000), 'near.epub');
      const buried = await upload(buriedContainerEpub(10_000), 'buried.epub');
      const found = await until(async () => {
        const i = await state.getItem(near.id);
        return i?.meta.title ? i : undefined;
      }, 10_000);
      assert.equal(found.meta.title, 'Buried');
      const line = await until(async () => lines.find((l) => l.id === buried.id && /could not be parsed/.test(String(l.msg))), 10_000);
      assert.match(String(line.reason), /not among the first 10000 zip entries/);
      assert.deepEqual((await state.getItem(buried.id))!.meta, {});
    } finally {
      await worker.stop();
    }
  });
});

describe('hostile files against the standalone server', () => {
  const ADMIN_PASSWORD = 'correct-horse-battery';
  let hostileRedis: TestRedis;
  let server: TestServer;
  let data: { path: string; cleanup(): void };
  let token: string;

  before(async () => {
    hostileRedis = await startRedis();
    data = tempDir();
    server = await startServer({ REDIS_URL: hostileRedis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD });
    token = await login(server.api, 'admin', ADMIN_PASSWORD);
  });

  after(async () => {
    await server?.stop();
    await hostileRedis?.close();
    data?.cleanup();
  });

  const send = async (bytes: Buffer, filename: string, type: string) => {
    const res = await httpUpload(server.api, token, bytes, filename, {}, type);
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as Item).id;
  };
  const meta = async (id: string) => ((await (await fetch(`${server.api}/library/${id}`, { headers: bearer(token) })).json()) as Item).meta;

  it('keeps /healthz fast while hostile EPUBs, audio and images are enriched, and enriches the next item at once', async (t) => {
    const hostile: Record<string, string> = {};
    for (const [name, opf] of Object.entries(hostileOpfs)) hostile[name] = await send(epubWithOpf(opf), `${name}.epub`, 'application/epub+zip');
    // Junk that claims to be audio and an image: their parsers run in the same bounded thread.
    const noise = Buffer.alloc(2000, 0xff);
    await send(noise, 'noise.mp3', 'audio/mpeg');
    await send(Buffer.concat([png(1, 1).subarray(0, 16), noise]), 'noise.png', 'image/png');
    const normal = await send(epub({ title: 'Right After', author: 'Somebody', language: 'de' }), 'normal.epub', 'application/epub+zip');
    const t0 = Date.now();

    // Poll /healthz one request after another while all that is enriched.
    let maxMs = 0;
    let enrichedAfter: number | undefined;
    while (Date.now() - t0 < 15_000) {
      const s = performance.now();
      const res = await fetch(`${server.url}/healthz`);
      await res.arrayBuffer();
      maxMs = Math.max(maxMs, performance.now() - s);
      if (enrichedAfter === undefined && (await meta(normal)).title === 'Right After') enrichedAfter = Date.now() - t0;
      if (enrichedAfter !== undefined && Date.now() - t0 > 1500) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.diagnostic(`/healthz worst latency while hostile files were enriched: ${maxMs.toFixed(1)} ms; next item enriched after ${enrichedAfter} ms`);
    assert.ok(maxMs < 200, `/healthz took up to ${maxMs.toFixed(0)} ms`);
    assert.ok(enrichedAfter !== undefined && enrichedAfter < 5000, `the next item was enriched after ${enrichedAfter} ms`);

    // Each hostile book keeps its item and what could be read; the unclosed title is reported.
    for (const [name, id] of Object.entries(hostile)) assert.equal((await meta(id)).author, HOSTILE_AUTHOR, `${name}: the author survives`);
    assert.equal((await meta(hostile['deep-nesting']!)).title, 'Deep');
    assert.equal((await meta(hostile['unclosed-titles']!)).title, undefined);
    const reason = server.logs.find((l) => l.id === hostile['unclosed-titles'] && l.dropped);
    assert.match(String((reason?.dropped as Record<string, string> | undefined)?.title), /dc:title is not closed/);
  });
});
