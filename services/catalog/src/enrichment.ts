import { hostname } from 'node:os';
import { AppError } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import { guessKind, type BlobStore } from '@nondivy/storage';
import { LibraryEventGroup, RedisLibraryState, type GroupEntry, type Redis } from '@nondivy/state';
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

/**
 * The enrichment worker: reads `item.created` events, and `item.updated` events of replaced bytes
 * (`content`), from the library stream through a consumer group, so an upload is never slowed by it
 * and a crash or restart loses no work (unacknowledged events are claimed again after
 * `reclaimAfterMs`). For each new item or new bytes it sniffs the content type and extracts metadata,
 * then updates the item (and, in the same step, its index entries).
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
  private readonly events: LibraryEventGroup;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly maxAttempts: number;
  private readonly reclaimAfterMs: number;
  private readonly blockMs: number;
  private pool: ExtractionPool;

  constructor(private readonly options: EnrichmentOptions) {
    this.items = new RedisLibraryState(options.redis);
    this.events = new LibraryEventGroup(options.redis, 'enrichment', `${hostname()}-${process.pid}`);
    this.pool = this.newPool();
    this.maxAttempts = options.maxAttempts ?? 3;
    this.reclaimAfterMs = options.reclaimAfterMs ?? 30_000;
    this.blockMs = options.blockMs ?? 2000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.events.open();
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.events.close();
    const pool = this.pool;
    this.pool = this.newPool();
    await pool.close();
    await this.loopDone;
  }

  private newPool() {
    const { blobs, log, extractTimeoutMs, extractLimits } = this.options;
    return new ExtractionPool({ blobs, log, timeoutMs: extractTimeoutMs, resourceLimits: extractLimits });
  }

  private async loop() {
    let failures = 0;
    let lastReclaim = 0;
    while (this.running) {
      try {
        if (Date.now() - lastReclaim > this.reclaimAfterMs / 2) {
          lastReclaim = Date.now();
          for (const entry of await this.events.claimIdle(this.reclaimAfterMs, 50)) await this.handle(entry);
        }
        const entries = await this.events.read(20, this.blockMs);
        failures = 0;
        for (const entry of entries) await this.handle(entry);
      } catch (err) {
        if (!this.running) break;
        if (failures++ === 0) this.options.log.warn({ err: { message: (err as Error).message } }, 'enrichment paused; retrying');
        await new Promise((res) => setTimeout(res, Math.min(250 * failures, 2000)));
      }
    }
  }

  /** New bytes to read: a new item, or an item whose bytes were replaced (its meta was emptied then). */
  private static hasNewBytes(entry: GroupEntry): boolean {
    return entry.type === 'item.created' || (entry.type === 'item.updated' && entry.content === true);
  }

  private async handle(entry: GroupEntry) {
    const id = entry.itemId;
    if (!EnrichmentWorker.hasNewBytes(entry) || !id) {
      await this.events.ack(entry.entryId);
      return;
    }
    try {
      await this.enrich(id);
      await this.events.ack(entry.entryId);
    } catch (err) {
      // A system failure: leave it pending for a retry, unless it has been tried enough.
      const attempts = await this.events.deliveries(entry.entryId);
      const reason = (err as Error).message.slice(0, 300);
      if (attempts >= this.maxAttempts) {
        await this.events.park({ ...entry, itemId: id }, { reason, attempts, at: new Date().toISOString() });
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
    // Bytes replaced while these were read: what was found describes the old ones. The replacement's
    // own event brings the new bytes here next.
    const now = await this.items.getItem(id);
    if (!now || now.sha256 !== item.sha256) return;
    await this.items.updateItem(id, changes);
    this.options.log.info({ id, meta: Object.keys(found.meta), contentType: changes.contentType }, 'item enriched');
  }
}
