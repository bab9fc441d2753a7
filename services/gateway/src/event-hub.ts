import type { Logger } from '@nondivy/log';
import { EventStreams, type EventStreamTail, type Redis, type StreamEvent } from '@nondivy/state';

/** One event as delivered to clients: its stream, the stream entry id and the event. */
export type HubEvent = StreamEvent;

type Listener = (e: HubEvent) => void;

const BLOCK_MS = 5000;
/** Most missed events sent to a client that reconnects with Last-Event-ID. */
export const MAX_BACKLOG = 1000;

/**
 * Fans the event streams (library, presence, transfers) out to live clients (server-sent events) from ONE blocking reader
 * per gateway, on its own Redis connection. It runs while someone listens, survives Redis outages
 * (retrying), and can replay what a reconnecting client missed.
 */
export class EventHub {
  private readonly listeners = new Set<Listener>();
  private readonly streams: EventStreams;
  private tail: EventStreamTail | null = null;
  private running = false;

  constructor(
    redis: Redis,
    private readonly log: Logger,
  ) {
    this.streams = new EventStreams(redis);
  }

  /** Starts delivering new events to `listener`; returns the function that stops it. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.running) void this.loop();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Library events after `afterId` still in the stream (at most MAX_BACKLOG). */
  async backlog(afterId: string): Promise<HubEvent[]> {
    if (!/^\d{1,20}-\d{1,20}$/.test(afterId)) return [];
    return this.streams.replayLibrary(afterId, MAX_BACKLOG);
  }

  private async loop() {
    this.running = true;
    this.tail ??= this.streams.tail();
    let failures = 0;
    while (this.listeners.size > 0 && this.tail) {
      try {
        const events = await this.tail.next(BLOCK_MS);
        failures = 0;
        for (const e of events) for (const l of this.listeners) l(e);
      } catch (err) {
        if (!this.tail) break;
        if (failures++ === 0) this.log.warn({ err: { message: (err as Error).message } }, 'event stream unavailable; retrying');
        await new Promise((r) => setTimeout(r, Math.min(200 * failures, 2000)));
      }
    }
    this.running = false;
  }

  /** Stops reading and closes the reader's connection. */
  close(): void {
    this.listeners.clear();
    const t = this.tail;
    this.tail = null;
    t?.close();
  }
}
