import type { Redis } from 'ioredis';
import { LibraryEvent, PresenceEvent, TransferEvent } from '@nondivy/contracts';
import { keys } from './keys.js';
import { ParkedJobStore, type ParkedJob } from './parked-jobs.js';

/**
 * The event streams (`nd:events:*`): library changes, written by the item scripts of
 * library-state.ts, presence and transfers, written by device-store.ts. Read here two ways: a
 * consumer group that takes each library event once and acknowledges it (`LibraryEventGroup`, for
 * background work such as enrichment), and a tail of all three streams for live clients with a
 * replay of the library stream (`EventStreams`, for the gateway's event hub).
 *
 * Blocking reads need a connection of their own, without the shared connection's command timeout and
 * with its offline queue, so that they wait out a Redis restart instead of failing every call.
 */
function readerOf(redis: Redis): Redis {
  const reader = redis.duplicate({ commandTimeout: undefined, enableOfflineQueue: true, maxRetriesPerRequest: null });
  reader.on('error', () => undefined); // outages are retried (and logged) by the callers' loops
  return reader;
}

/** A stream entry's fields [name, value, …] as an object. */
const fieldsOf = (fields: string[]): Record<string, string> => {
  const obj: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) obj[fields[i]!] = fields[i + 1]!;
  return obj;
};

type RawEntry = [id: string, fields: string[]];

/** One library event as a consumer group delivers it: the stream entry id and its fields. */
export interface GroupEntry {
  entryId: string;
  type?: string;
  /** The item the event is about. */
  itemId?: string;
  /** On `item.updated`: the item's bytes were replaced (its meta emptied), not only its description. */
  content?: boolean;
}

/** The consumer groups reading the library stream (each takes every event once). */
export type LibraryConsumerGroup = typeof keys.enrichmentGroup;

/**
 * One consumer of a consumer group on the library event stream. The group is created on first use,
 * from the start of the stream (so events written before the first consumer ran are handled too),
 * and created again if it disappears. An event stays pending until acknowledged or parked; a pending
 * event whose consumer died or hung is claimed by another after an idle time.
 */
export class LibraryEventGroup {
  private reader: Redis | null = null;
  private groupReady = false;

  constructor(
    private readonly redis: Redis,
    private readonly group: LibraryConsumerGroup,
    private readonly consumer: string,
  ) {}

  /** Opens the reading connection; `close` ends it (a blocked read then fails at once). */
  open(): void {
    if (this.reader) return;
    this.reader = readerOf(this.redis);
    this.groupReady = false;
  }

  close(): void {
    this.reader?.disconnect();
    this.reader = null;
  }

  private async use<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = this.reader;
    if (!r) throw new Error('the event group is closed');
    try {
      if (!this.groupReady) {
        await this.ensureGroup(r);
        this.groupReady = true;
      }
      return await fn(r);
    } catch (err) {
      if (/NOGROUP/.test((err as Error).message)) this.groupReady = false;
      throw err;
    }
  }

  private async ensureGroup(r: Redis): Promise<void> {
    try {
      await r.xgroup('CREATE', keys.libraryEvents, this.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  private static entries(raw: RawEntry[]): GroupEntry[] {
    return raw.map(([entryId, fields]) => {
      const f = fieldsOf(fields);
      return { entryId, type: f.type, itemId: f.id, ...(f.content === '1' ? { content: true } : {}) };
    });
  }

  /** Takes over up to `count` pending events idle longer than `minIdleMs` (their consumer died or hung). */
  claimIdle(minIdleMs: number, count: number): Promise<GroupEntry[]> {
    return this.use(async (r) => {
      const [, claimed] = (await r.xautoclaim(keys.libraryEvents, this.group, this.consumer, minIdleMs, '0-0', 'COUNT', count)) as [string, RawEntry[]];
      return LibraryEventGroup.entries(claimed);
    });
  }

  /** Up to `count` new events, waiting at most `blockMs` for one. */
  read(count: number, blockMs: number): Promise<GroupEntry[]> {
    return this.use(async (r) => {
      const res = (await r.xreadgroup('GROUP', this.group, this.consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', keys.libraryEvents, '>')) as [string, RawEntry[]][] | null;
      return LibraryEventGroup.entries(res?.[0]?.[1] ?? []);
    });
  }

  /** Marks an event handled. */
  ack(entryId: string): Promise<void> {
    return this.use(async (r) => {
      await r.xack(keys.libraryEvents, this.group, entryId);
    });
  }

  /** How many times a pending event has been delivered (1 when it is not pending). */
  deliveries(entryId: string): Promise<number> {
    return this.use(async (r) => {
      const pending = (await r.xpending(keys.libraryEvents, this.group, entryId, entryId, 1)) as [string, string, number, number][];
      return pending[0]?.[3] ?? 1;
    });
  }

  /** Gives up an event: its item's job is recorded as parked with the reason, and the event acknowledged. */
  park(entry: GroupEntry & { itemId: string }, job: ParkedJob): Promise<void> {
    return this.use(async (r) => {
      await new ParkedJobStore(r).park(entry.itemId, job);
      await r.xack(keys.libraryEvents, this.group, entry.entryId);
    });
  }
}

/** The streams a tail follows, in order; library entries carry ids a client can resume from. */
const STREAMS = [
  { key: keys.libraryEvents, kind: 'library', schema: LibraryEvent },
  { key: keys.presenceEvents, kind: 'presence', schema: PresenceEvent },
  { key: keys.transferEvents, kind: 'transfer', schema: TransferEvent },
] as const;

/** One event of a stream: which stream, its entry id, and the event (entries that do not parse are skipped). */
export type StreamEvent =
  | { id: string; stream: 'library'; event: LibraryEvent }
  | { id: string; stream: 'presence'; event: PresenceEvent }
  | { id: string; stream: 'transfer'; event: TransferEvent };

function parseEntries(stream: (typeof STREAMS)[number], entries: RawEntry[]): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (const [id, fields] of entries) {
    const parsed = stream.schema.safeParse(fieldsOf(fields));
    if (parsed.success) out.push({ id, stream: stream.kind, event: parsed.data } as StreamEvent);
  }
  return out;
}

/**
 * A tail of the library, presence and transfer streams on its own connection: each `next` returns
 * the events written since the previous one (the first waits for events written after it started).
 */
export class EventStreamTail {
  private readonly lastIds: string[] = STREAMS.map(() => '$');
  private reader: Redis | null;

  constructor(redis: Redis) {
    this.reader = readerOf(redis);
  }

  /** The next events of any stream, waiting at most `blockMs`; [] when none came. */
  async next(blockMs: number): Promise<StreamEvent[]> {
    if (!this.reader) throw new Error('the event tail is closed');
    const res = (await this.reader.xread('BLOCK', blockMs, 'STREAMS', ...STREAMS.map((s) => s.key), ...this.lastIds)) as [string, RawEntry[]][] | null;
    const out: StreamEvent[] = [];
    for (const [key, entries] of res ?? []) {
      const i = STREAMS.findIndex((s) => s.key === key);
      if (i < 0 || !entries.length) continue;
      this.lastIds[i] = entries[entries.length - 1]![0];
      out.push(...parseEntries(STREAMS[i]!, entries));
    }
    return out;
  }

  /** Closes the connection (a blocked `next` then fails at once). */
  close(): void {
    const r = this.reader;
    this.reader = null;
    r?.disconnect();
  }
}

/** Reading the event streams: replay of the library stream and tails for live delivery. */
export class EventStreams {
  constructor(private readonly redis: Redis) {}

  /** Library events after entry `afterId` (a valid stream id) still in the stream, at most `max`. */
  async replayLibrary(afterId: string, max: number): Promise<StreamEvent[]> {
    const entries = (await this.redis.xrange(keys.libraryEvents, `(${afterId}`, '+', 'COUNT', max)) as RawEntry[];
    return parseEntries(STREAMS[0], entries);
  }

  /** A tail of every stream on a connection of its own. */
  tail(): EventStreamTail {
    return new EventStreamTail(this.redis);
  }
}
