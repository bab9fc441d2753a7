/**
 * Enrichment against a real Redis and blob store: metadata of a real MP3 (ID3) and EPUB built here,
 * image dimensions, a content type sniffed from the bytes, unparseable files kept, and the worker's
 * guarantees — no lost work across a restart, poison events parked after a few tries.
 */
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { CatalogSearch, EnrichmentWorker } from '@nondivy/catalog';
import { loadGatewayConfig } from '@nondivy/config';
import type { Item, SearchQuery } from '@nondivy/contracts';
import { AppError } from '@nondivy/errors';
import { createGatewayDeps, type GatewayDeps } from '@nondivy/gateway';
import { createLogger } from '@nondivy/log';
import { pino } from 'pino';
import { createRedis, keys, RedisLibraryState, waitForRedis, type Redis } from '@nondivy/state';
import type { BlobStore } from '@nondivy/storage';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { epub, mp3, png } from './helpers/media.js';

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
