import { LibraryEvent, PresenceEvent, TransferEvent } from '@nondivy/contracts';
import type { Logger } from '@nondivy/log';
import { keys, type Redis } from '@nondivy/state';

/** The streams fanned out: library changes (replayable by Last-Event-ID), presence, transfers. */
const STREAMS = [
  { key: keys.libraryEvents, kind: 'library', schema: LibraryEvent },
  { key: keys.presenceEvents, kind: 'presence', schema: PresenceEvent },
  { key: keys.transferEvents, kind: 'transfer', schema: TransferEvent },
] as const;

/** One event as delivered to clients: its stream, the stream entry id and the event. */
export type HubEvent =
  | { id: string; stream: 'library'; event: LibraryEvent }
  | { id: string; stream: 'presence'; event: PresenceEvent }
  | { id: string; stream: 'transfer'; event: TransferEvent };

type Listener = (e: HubEvent) => void;

const BLOCK_MS = 5000;
/** Most missed events sent to a client that reconnects with Last-Event-ID. */
export const MAX_BACKLOG = 1000;

function parseEntries(stream: (typeof STREAMS)[number], entries: [string, string[]][]): HubEvent[] {
  const out: HubEvent[] = [];
  for (const [id, fields] of entries) {
    const obj: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) obj[fields[i]!] = fields[i + 1]!;
    const parsed = stream.schema.safeParse(obj);
    if (parsed.success) out.push({ id, stream: stream.kind, event: parsed.data } as HubEvent);
  }
  return out;
}

/**
 * Fans the event streams (library, presence, transfers) out to live clients (server-sent events) from ONE blocking reader
 * per gateway, on its own Redis connection. It runs while someone listens, survives Redis outages
 * (retrying), and can replay what a reconnecting client missed.
 */
export class EventHub {
  private readonly listeners = new Set<Listener>();
  private reader: Redis | null = null;
  private running = false;
  private lastIds: string[] = STREAMS.map(() => '$');

  constructor(
    private readonly redis: Redis,
    private readonly log: Logger,
  ) {}

  /** Starts delivering new events to `listener`; returns the function that stops it. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.running) void this.loop();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Events after `afterId` still in the stream (at most MAX_BACKLOG). */
  async backlog(afterId: string): Promise<HubEvent[]> {
    if (!/^\d{1,20}-\d{1,20}$/.test(afterId)) return [];
    const entries = (await this.redis.xrange(keys.libraryEvents, `(${afterId}`, '+', 'COUNT', MAX_BACKLOG)) as [string, string[]][];
    return parseEntries(STREAMS[0], entries);
  }

  private async loop() {
    this.running = true;
    // Blocking reads need a connection of their own, without the shared connection's command timeout.
    if (!this.reader) {
      this.reader = this.redis.duplicate({ commandTimeout: undefined, enableOfflineQueue: true, maxRetriesPerRequest: null });
      this.reader.on('error', () => undefined); // outages are retried (and logged) by the loop below
    }
    let failures = 0;
    while (this.listeners.size > 0 && this.reader) {
      try {
        const res = (await this.reader.xread('BLOCK', BLOCK_MS, 'STREAMS', ...STREAMS.map((s) => s.key), ...this.lastIds)) as [string, [string, string[]][]][] | null;
        failures = 0;
        if (!res) continue;
        for (const [key, entries] of res) {
          const i = STREAMS.findIndex((s) => s.key === key);
          if (i < 0 || !entries.length) continue;
          this.lastIds[i] = entries[entries.length - 1]![0];
          for (const e of parseEntries(STREAMS[i]!, entries)) for (const l of this.listeners) l(e);
        }
      } catch (err) {
        if (!this.reader) break;
        if (failures++ === 0) this.log.warn({ err: { message: (err as Error).message } }, 'event stream unavailable; retrying');
        await new Promise((r) => setTimeout(r, Math.min(200 * failures, 2000)));
      }
    }
    this.running = false;
  }

  /** Stops reading and closes the reader's connection. */
  close(): void {
    this.listeners.clear();
    const r = this.reader;
    this.reader = null;
    r?.disconnect();
  }
}
