import { hostname } from 'node:os';
import { AppError } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import { guessKind, type BlobStore } from '@nondivy/storage';
import { keys, RedisLibraryState, type Redis } from '@nondivy/state';
import type { ResourceLimits } from 'node:worker_threads';
import { ExtractionPool } from './enrich-pool.js';

export interface EnrichmentOptions {
  redis: Redis;
  blobs: BlobStore;
  log: Logger;
  /** Deliveries of one event before it is parked with its reason. */
  maxAttempts?: number;
  /** A pending event idle this long (its consumer died or hung) is claimed again, ms. */
  reclaimAfterMs?: number;
  blockMs?: number;
  /** Deadline of one item's extraction, ms (default 10 s): past it, the worker thread is terminated. */
  extractTimeoutMs?: number;
  /** Heap and stack limits of the extraction worker thread. */
  extractLimits?: ResourceLimits;
}

type Entry = [id: string, fields: string[]];

const field = (fields: string[], name: string) => {
  const i = fields.indexOf(name);
  return i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined;
};

/**
 * The enrichment worker: reads `item.created` events from the library stream through a consumer
 * group, so an upload is never slowed by it and a crash or restart loses no work (unacknowledged
 * events are claimed again after `reclaimAfterMs`). For each new item it sniffs the content type and
 * extracts metadata, then updates the item (and, in the same step, its index entries).
 * - Extraction runs in a worker thread with a deadline and a heap limit (enrich-pool.ts): a hostile
 *   file costs that thread, never the event loop the catalog (and, standalone, the gateway and FTP)
 *   runs on.
 * - A file the extractors cannot parse, or that breaks a limit, keeps its item, without meta, and the
 *   reason is logged; a field that breaks a limit is left out and the others kept.
 * - A failure of the system (Redis, blob store) leaves the event pending: it is retried, and after
 *   `maxAttempts` deliveries parked in `nd:enrich:parked` with its reason.
 */
export class EnrichmentWorker {
  private readonly items: RedisLibraryState;
  private reader: Redis | null = null;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly consumer = `${hostname()}-${process.pid}`;
  private readonly maxAttempts: number;
  private readonly reclaimAfterMs: number;
  private readonly blockMs: number;
  private pool: ExtractionPool;

  constructor(private readonly options: EnrichmentOptions) {
    this.items = new RedisLibraryState(options.redis);
    this.pool = this.newPool();
    this.maxAttempts = options.maxAttempts ?? 3;
    this.reclaimAfterMs = options.reclaimAfterMs ?? 30_000;
    this.blockMs = options.blockMs ?? 2000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.reader = this.options.redis.duplicate({ commandTimeout: undefined, enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.reader.on('error', () => undefined);
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.reader?.disconnect();
    this.reader = null;
    const pool = this.pool;
    this.pool = this.newPool();
    await pool.close();
    await this.loopDone;
  }

  private newPool() {
    const { blobs, log, extractTimeoutMs, extractLimits } = this.options;
    return new ExtractionPool({ blobs, log, timeoutMs: extractTimeoutMs, resourceLimits: extractLimits });
  }

  private async ensureGroup(r: Redis) {
    try {
      // From the start of the stream: items uploaded before the worker first ran get enriched too.
      await r.xgroup('CREATE', keys.libraryEvents, keys.enrichmentGroup, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  private async loop() {
    let failures = 0;
    let groupReady = false;
    let lastReclaim = 0;
    while (this.running && this.reader) {
      const r = this.reader;
      try {
        if (!groupReady) {
          await this.ensureGroup(r);
          groupReady = true;
        }
        if (Date.now() - lastReclaim > this.reclaimAfterMs / 2) {
          lastReclaim = Date.now();
          const [, claimed] = (await r.xautoclaim(keys.libraryEvents, keys.enrichmentGroup, this.consumer, this.reclaimAfterMs, '0-0', 'COUNT', 50)) as [string, Entry[]];
          for (const entry of claimed) await this.handle(r, entry);
        }
        const res = (await r.xreadgroup('GROUP', keys.enrichmentGroup, this.consumer, 'COUNT', 20, 'BLOCK', this.blockMs, 'STREAMS', keys.libraryEvents, '>')) as
          | [string, Entry[]][]
          | null;
        failures = 0;
        for (const entry of res?.[0]?.[1] ?? []) await this.handle(r, entry);
      } catch (err) {
        if (!this.running) break;
        if (/NOGROUP/.test((err as Error).message)) groupReady = false;
        if (failures++ === 0) this.options.log.warn({ err: { message: (err as Error).message } }, 'enrichment paused; retrying');
        await new Promise((res) => setTimeout(res, Math.min(250 * failures, 2000)));
      }
    }
  }

  private async handle(r: Redis, [entryId, fields]: Entry) {
    const type = field(fields, 'type');
    const id = field(fields, 'id');
    if (type !== 'item.created' || !id) {
      await r.xack(keys.libraryEvents, keys.enrichmentGroup, entryId);
      return;
    }
    try {
      await this.enrich(id);
      await r.xack(keys.libraryEvents, keys.enrichmentGroup, entryId);
    } catch (err) {
      // A system failure: leave it pending for a retry, unless it has been tried enough.
      const pending = (await r.xpending(keys.libraryEvents, keys.enrichmentGroup, entryId, entryId, 1)) as [string, string, number, number][];
      const attempts = pending[0]?.[3] ?? 1;
      const reason = (err as Error).message.slice(0, 300);
      if (attempts >= this.maxAttempts) {
        await r.hset(keys.enrichmentParked, id, JSON.stringify({ reason, attempts, at: new Date().toISOString() }));
        await r.xack(keys.libraryEvents, keys.enrichmentGroup, entryId);
        this.options.log.error({ id, attempts, reason }, 'enrichment parked after repeated failures');
      } else {
        this.options.log.warn({ id, attempts, reason }, 'enrichment failed; will retry');
      }
    }
  }

  /** Enriches one item now; a parse failure is logged and leaves the item as it is. */
  async enrich(id: string): Promise<void> {
    const item = await this.items.getItem(id);
    if (!item) return; // deleted meanwhile
    let found;
    try {
      found = await this.pool.run(item.blobKey, item);
    } catch (err) {
      if (err instanceof AppError && (err.kind === 'unavailable' || err.kind === 'not_found')) throw err;
      this.options.log.info({ id, reason: (err as Error).message.slice(0, 200) }, 'no metadata: the file could not be parsed');
      return;
    }
    if (found.dropped) this.options.log.info({ id, dropped: found.dropped }, 'metadata fields left out: they break a limit');
    const changes: { meta?: typeof item.meta; contentType?: string; kind?: typeof item.kind } = {};
    if (Object.keys(found.meta).length > 0) changes.meta = { ...item.meta, ...found.meta };
    if (found.contentType && found.contentType !== item.contentType) {
      changes.contentType = found.contentType;
      if (item.kind === 'other') changes.kind = guessKind(found.contentType, item.filename);
    }
    if (Object.keys(changes).length === 0) return;
    await this.items.updateItem(id, changes);
    this.options.log.info({ id, meta: Object.keys(found.meta), contentType: changes.contentType }, 'item enriched');
  }
}
