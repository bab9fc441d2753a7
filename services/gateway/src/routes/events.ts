import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { EventHub, HubEvent } from '../event-hub.js';

const HEARTBEAT_MS = 15_000;

/**
 * GET /events: server-sent events of library changes (`item.created`, `item.updated`,
 * `item.deleted`, data `{type, id, at}`), devices coming and going (`device.online`,
 * `device.offline`) and, for the device whose X-Device-Token is sent, its transfers
 * (`transfer.changed`). A client that reconnects with `Last-Event-ID` first gets
 * what it missed (up to 1000 events), so nothing is lost across a reconnection.
 */
export const eventRoutes: FastifyPluginAsync<{ hub: EventHub; deviceOf: (req: FastifyRequest) => Promise<string | null> }> = async (app, { hub, deviceOf }) => {
  // Open streams never end by themselves: end them when the server shuts down, or it would wait forever.
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
  });
  app.get('/events', { schema: { tags: ['events'], summary: 'Live library changes (text/event-stream); resumes from Last-Event-ID' } }, async (req, reply) => {
    // Transfer events go only to the device they concern (identified by its X-Device-Token).
    const device = await deviceOf(req);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    let lastSent = '';
    const send = (e: HubEvent) => {
      if (e.stream !== 'library') {
        if (e.stream === 'transfer' && e.event.from !== device && e.event.to !== device) return;
        res.write(`event: ${e.event.type}\ndata: ${JSON.stringify(e.event)}\n\n`);
        return;
      }
      // Library events carry their stream id, so a client that reconnects resumes where it was.
      if (lastSent && compareIds(e.id, lastSent) <= 0) return;
      lastSent = e.id;
      res.write(`id: ${e.id}\nevent: ${e.event.type}\ndata: ${JSON.stringify(e.event)}\n\n`);
    };
    // Subscribe first and hold live events while the backlog is sent, so none falls in between.
    const held: HubEvent[] = [];
    let replaying = true;
    const unsubscribe = hub.subscribe((e) => (replaying ? held.push(e) : send(e)));
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    open.add(res);
    req.raw.on('close', () => {
      open.delete(res);
      clearInterval(heartbeat);
      unsubscribe();
    });
    const lastEventId = req.headers['last-event-id'];
    if (typeof lastEventId === 'string') {
      try {
        for (const e of await hub.backlog(lastEventId.trim())) send(e);
      } catch (err) {
        req.log.warn({ err: { message: (err as Error).message } }, 'could not replay missed events');
      }
    }
    replaying = false;
    for (const e of held) send(e);
  });
};

/** Orders Redis stream ids ("ms-seq"). */
function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}
