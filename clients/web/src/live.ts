import { API } from './api.js';

export type LiveEvent = { type: 'item.created' | 'item.updated' | 'item.deleted'; id: string; at: string };

const listeners = new Set<(e: LiveEvent) => void>();
let source: EventSource | null = null;

/**
 * Library changes as they happen (GET /events, server-sent events). One EventSource for the whole
 * app, opened while someone listens; it reconnects by itself and resumes from the last event id.
 */
export function onLibraryEvent(listener: (e: LiveEvent) => void): () => void {
  listeners.add(listener);
  if (!source) {
    source = new EventSource(`${API}/events`);
    for (const type of ['item.created', 'item.updated', 'item.deleted'] as const) {
      source.addEventListener(type, (msg) => {
        let event: LiveEvent;
        try {
          const data = JSON.parse((msg as MessageEvent<string>).data) as Partial<LiveEvent>;
          if (typeof data.id !== 'string') return;
          event = { type, id: data.id, at: String(data.at ?? '') };
        } catch {
          return;
        }
        for (const l of listeners) l(event);
      });
    }
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && source) {
      source.close();
      source = null;
    }
  };
}
