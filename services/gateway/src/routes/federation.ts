import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Device, DeviceId, Invite, Item, ItemId, ItemList, Link, LinkList, OfferedFile, SearchQuery, Transfer, TransferId, TransferState, type TransferState as State } from '@nondivy/contracts';
import { AppError, badInput, conflict, notFound } from '@nondivy/errors';
import { digestOfSha256 } from '@nondivy/federation';
import type { OfferLimits } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import { TransferStateError, type RedisDeviceStore, type RedisTransferStore } from '@nondivy/state';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { contentDispositionFor } from '@nondivy/http';
import type { GatewayDeps } from '../deps.js';
import { type Federation, publicLink } from '../federation.js';
import { requireAdmin } from '../plugins/authn.js';
import type { RelayHub } from '../relay.js';
import { checkOfferSize } from './devices.js';
import { sendContent } from './library.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The exact body bytes of a JSON request from a linked site (its digest is signed). */
    rawBody?: Buffer;
  }
}

const SiteParams = z.object({ siteId: z.string().regex(/^[A-Za-z0-9_-]{8,40}$/) });
const RemoteItemParams = SiteParams.extend({ id: ItemId });

/**
 * A fixed-window request counter per client address: federation endpoints are open to the network
 * (linked sites call them), so each address gets `max` calls per `windowMs`.
 */
function rateLimit(app: FastifyInstance, max: number, windowMs: number) {
  let counts = new Map<string, number>();
  const timer = setInterval(() => (counts = new Map()), windowMs);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
  app.addHook('onRequest', async (req, reply) => {
    const n = (counts.get(req.ip) ?? 0) + 1;
    counts.set(req.ip, n);
    if (n > max) {
      reply.header('retry-after', String(Math.ceil(windowMs / 1000)));
      throw new AppError('rate_limited', 'Too many federation requests from your address; slow down');
    }
  });
}

/**
 * Streams a linked site's answer (status, the framing headers, body) back to our client. What the
 * browser does with it is decided here, not by the other site: always a download, never sniffed,
 * sandboxed — so another site's bytes cannot run as a page of this origin.
 */
async function relayResponse(upstream: IncomingMessage, reply: FastifyReply, item: Item) {
  const headers: OutgoingHttpHeaders = {
    'content-disposition': contentDispositionFor(item.filename, 'attachment'),
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; sandbox",
    'cache-control': 'no-cache',
  };
  for (const h of ['content-type', 'content-length', 'content-range', 'etag', 'accept-ranges', 'last-modified']) {
    const v = upstream.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  reply.hijack();
  reply.raw.writeHead(upstream.statusCode ?? 502, headers);
  await pipeline(upstream, reply.raw).catch(() => {
    upstream.destroy();
    reply.raw.destroy();
  });
}

/**
 * Admin and user routes of federation, under /api/v1: invites and links (admins), content of a
 * linked site's item streamed through this gateway (or served from our own copy), pulling an item
 * into this library (admins).
 */
export const federationRoutes: FastifyPluginAsyncZod<{ deps: GatewayDeps; federation: Federation }> = async (app, { deps, federation }) => {
  app.post(
    '/federation/invites',
    { schema: { tags: ['federation'], summary: 'Create an invite for another site (admins)', response: { 201: Invite } } },
    async (req, reply) => {
      requireAdmin(req);
      const invite = await federation.createInvite();
      req.log.info({ expiresAt: invite.expiresAt }, 'federation invite created');
      return reply.code(201).send(invite);
    },
  );

  app.post(
    '/federation/links',
    { schema: { tags: ['federation'], summary: 'Link to the site that made an invite (admins)', body: z.strictObject({ code: z.string().max(2000) }), response: { 201: Link } } },
    async (req, reply) => {
      requireAdmin(req);
      return reply.code(201).send(publicLink(await federation.acceptInvite(req.body.code)));
    },
  );

  app.get('/federation/links', { schema: { tags: ['federation'], summary: 'Linked sites and their state (admins)', response: { 200: LinkList } } }, async (req) => {
    requireAdmin(req);
    return { links: (await federation.links()).map(publicLink) };
  });

  app.delete('/federation/links/:siteId', { schema: { tags: ['federation'], summary: 'Unlink a site (on both sides when it answers) (admins)', params: SiteParams } }, async (req) => {
    requireAdmin(req);
    return federation.unlink(req.params.siteId);
  });

  const remoteItem = async (siteId: string, id: string) => {
    const link = await federation.link(siteId);
    return { link, item: await federation.call(link, 'GET', `/federation/v1/library/${id}`, Item) };
  };

  app.get('/sites/:siteId/library/:id', { schema: { tags: ['federation'], summary: 'An item of a linked site', params: RemoteItemParams, response: { 200: Item } } }, async (req) => {
    const { item } = await remoteItem(req.params.siteId, req.params.id);
    return { ...item, site: req.params.siteId };
  });

  app.get(
    '/sites/:siteId/library/:id/content',
    { schema: { tags: ['federation'], summary: 'The bytes of a linked site\'s item, through this gateway (Range; our own copy when we hold the same bytes)', params: RemoteItemParams } },
    async (req, reply) => {
      const { link, item } = await remoteItem(req.params.siteId, req.params.id);
      const local = await deps.library.findBySha256(item.sha256);
      if (local) return sendContent(deps, req, reply, local.id, false);
      const headers: Record<string, string> = {};
      for (const h of ['range', 'if-range', 'if-none-match']) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      const upstream = await federation.stream(link, `/federation/v1/library/${req.params.id}/content`, headers);
      return relayResponse(upstream, reply, item);
    },
  );

  app.post(
    '/sites/:siteId/library/:id/pull',
    { schema: { tags: ['federation'], summary: 'Copy a linked site\'s item into this library, verified by SHA-256 (admins)', params: RemoteItemParams, response: { 201: Item } } },
    async (req, reply) => {
      const admin = requireAdmin(req);
      const { link, item } = await remoteItem(req.params.siteId, req.params.id);
      const res = await federation.request(link, 'GET', `/federation/v1/library/${req.params.id}/content`, { timeoutMs: null });
      if (res.status !== 200 || !res.body) throw new AppError('unavailable', `${link.name} did not send the item (${res.status})`);
      const staged = await deps.library.stage(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), { maxBytes: item.size });
      if (staged.sha256 !== item.sha256 || staged.size !== item.size) {
        await staged.discard();
        throw new AppError('unavailable', `The bytes from ${link.name} do not match the item's SHA-256; nothing was kept`);
      }
      const copy = await staged.commit(
        { filename: item.filename, contentType: item.contentType, title: item.title, kind: item.kind, tags: item.tags, description: item.description },
        { username: admin.username, role: admin.role },
      );
      req.log.info({ from: link.siteId, remoteId: item.id, id: copy.id }, 'pulled an item from a linked site');
      return reply.code(201).send(copy);
    },
  );
};

/**
 * Transfers whose other device is on a linked site: the offer, state changes and bytes are passed
 * between the two gateways (signed), and each side keeps a record under the same transfer id.
 */
export class RemoteTransfers {
  constructor(
    private readonly federation: Federation,
    private readonly transfers: RedisTransferStore,
    private readonly log: Logger,
  ) {}

  /** Offers files to `DEVICE@SITE`; the linked site checks the device is online. */
  async offer(from: { device: string; name: string; owner: string }, to: string, files: OfferedFile[], ttlMs: number, id: string, caps: { maxSent: number; maxReceived: number }): Promise<Transfer> {
    const at = to.lastIndexOf('@');
    const link = await this.federation.resolveSite(to.slice(at + 1));
    const remote = await this.federation.call(link, 'POST', '/federation/v1/transfers', Transfer, {
      id,
      from: { device: from.device, name: from.name },
      to: to.slice(0, at),
      files,
    });
    if (!DeviceId.safeParse(remote.to.device).success || remote.id !== id) throw new AppError('unavailable', `${link.name} answered the offer in an unexpected shape`);
    return this.transfers.create({
      id,
      from,
      to: { device: remote.to.device, name: remote.to.name, owner: '', site: link.siteId },
      files: files.map((f, n) => ({ ...f, n })),
      ttlMs,
    }, caps);
  }

  /** Tells the other site of a state change made here (best effort: its own expiry covers a miss). */
  forward(t: Transfer): void {
    const site = t.from.site ?? t.to.site;
    if (!site) return;
    void (async () => {
      try {
        await this.federation.call(await this.federation.link(site), 'POST', `/federation/v1/transfers/${t.id}/state`, z.unknown(), { state: t.state, reason: t.reason ?? undefined });
      } catch (err) {
        this.log.warn({ transfer: t.id, site, err: { message: (err as Error).message } }, 'could not tell the linked site of a transfer change');
      }
    })();
  }

  /** Streams a file our sender PUTs on to the receiving site's relay. */
  async send(t: Transfer, n: number, body: Readable): Promise<void> {
    const file = t.files[n]!;
    const link = await this.federation.link(t.to.site!);
    const res = await this.federation.request(link, 'PUT', `/federation/v1/transfers/${t.id}/files/${n}`, { body, digest: digestOfSha256(file.sha256), timeoutMs: null });
    if (!res.ok) {
      const detail = ((await res.json().catch(() => ({}))) as { detail?: string }).detail;
      throw new AppError('unavailable', `${link.name}: ${detail ?? `relay answered ${res.status}`}`);
    }
    await res.body?.cancel();
  }
}

/**
 * Server-to-server routes under /federation/v1, called by linked sites only: every request is
 * verified (signature, key of the link, clock window, nonce, body digest) before anything else,
 * except the handshake, which is authorised by the invite's one-time secret.
 */
export const peerRoutes: FastifyPluginAsyncZod<{
  deps: GatewayDeps;
  federation: Federation;
  devices: RedisDeviceStore;
  transfers: RedisTransferStore;
  relay: RelayHub;
  offerTtlMs: number;
  offerLimits: OfferLimits;
}> = async (app, { deps, federation, devices, transfers, relay, offerTtlMs, offerLimits }) => {
  rateLimit(app, 600, 60_000);
  // JSON bodies are kept as bytes too: their digest is part of the signature.
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (req, body, done) => {
    (req as FastifyRequest).rawBody = body as Buffer;
    try {
      done(null, (body as Buffer).length ? JSON.parse((body as Buffer).toString('utf8')) : undefined);
    } catch {
      done(badInput('Malformed JSON body'));
    }
  });
  // File bodies are not parsed: they are piped to the receiving device.
  app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null));
  const verified = (req: FastifyRequest, digest?: string) => federation.verify(req, req.rawBody ?? null, digest);

  app.post(
    '/handshake',
    {
      schema: {
        body: z.strictObject({
          secret: z.string().min(20).max(100),
          nonce: z.string().min(16).max(64),
          site: z.strictObject({ siteId: z.string().regex(/^[A-Za-z0-9_-]{8,40}$/), name: z.string().min(1).max(100), url: z.url({ protocol: /^https?$/ }), publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/) }),
        }),
      },
      config: {},
    },
    async (req) => federation.handshake(req.body, req.ip),
  );

  app.get('/ping', async (req) => {
    await verified(req);
    return { siteId: federation.siteId, name: federation.name };
  });

  app.delete('/link', async (req, reply) => {
    const link = await verified(req);
    await federation.forget(link.siteId);
    return reply.code(204).send();
  });

  app.get('/library', { schema: { querystring: SearchQuery, response: { 200: ItemList } } }, async (req) => {
    await verified(req);
    const list = await deps.catalog.search({ ...req.query, scope: 'local' });
    return { items: list.items, nextCursor: list.nextCursor, total: list.total };
  });

  app.get('/library/:id', { schema: { params: z.object({ id: ItemId }), response: { 200: Item } } }, async (req) => {
    await verified(req);
    return deps.library.get(req.params.id);
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/library/:id/content',
    exposeHeadRoute: false,
    schema: { params: z.object({ id: ItemId }) },
    handler: async (req, reply) => {
      await verified(req);
      return sendContent(deps, req, reply, req.params.id, false);
    },
  });

  // Linked sites see devices' names (to send to them), never their owners' accounts.
  app.get('/devices', { schema: { response: { 200: z.object({ devices: z.array(Device) }) } } }, async (req) => {
    await verified(req);
    return { devices: (await devices.list()).map((d) => ({ id: d.id, name: d.name, owner: '', since: d.since, lastSeen: d.lastSeen, directUrl: null })) };
  });

  app.post(
    '/transfers',
    {
      schema: {
        body: z.strictObject({ id: TransferId, from: z.strictObject({ device: DeviceId, name: z.string().max(64) }), to: z.string().min(1).max(100), files: z.array(OfferedFile).min(1).max(1000) }),
        response: { 201: Transfer },
      },
    },
    async (req, reply) => {
      const link = await verified(req);
      checkOfferSize(req.body.files, offerLimits);
      const to = (await devices.get(req.body.to)) ?? (await devices.list()).find((d) => d.name === req.body.to);
      if (!to) throw conflict(`Device ${req.body.to} is not online`);
      if (await transfers.get(req.body.id)) throw conflict('A transfer with this id exists');
      if (await devices.get(req.body.from.device)) throw conflict('The sending device id is one of this site\'s devices');
      const t = await transfers.create({
        id: req.body.id,
        from: { device: req.body.from.device, name: req.body.from.name, owner: '', site: link.siteId },
        to: { device: to.id, name: to.name, owner: to.owner },
        files: req.body.files.map((f, n) => ({ ...f, n })),
        ttlMs: offerTtlMs,
      }, { maxSent: offerLimits.maxPendingPerSender, maxReceived: offerLimits.maxPendingPerReceiver });
      req.log.info({ transfer: t.id, from: link.siteId, to: to.id }, 'transfer offered from a linked site');
      return reply.code(201).send(t);
    },
  );

  // What a linked site may change depends on its side of the transfer: the receiving side answers
  // the offer and confirms delivery; the sending side can only give up.
  const MOVES: Record<'sender' | 'receiver', Partial<Record<State, State[]>>> = {
    receiver: { accepted: ['offered'], rejected: ['offered'], expired: ['offered'], cancelled: ['offered', 'accepted'], completed: ['accepted'], failed: ['offered', 'accepted'] },
    sender: { expired: ['offered'], cancelled: ['offered', 'accepted'], failed: ['offered', 'accepted'] },
  };

  app.post(
    '/transfers/:id/state',
    { schema: { params: z.object({ id: TransferId }), body: z.strictObject({ state: TransferState, reason: z.string().max(500).optional() }) } },
    async (req, reply) => {
      const link = await verified(req);
      const t = await transfers.get(req.params.id);
      if (!t || (t.from.site !== link.siteId && t.to.site !== link.siteId)) throw notFound('No such transfer');
      const side = t.from.site === link.siteId ? 'sender' : 'receiver';
      const from = MOVES[side][req.body.state];
      if (!from) throw new AppError('forbidden', `The ${side}'s site cannot set state ${req.body.state}`);
      try {
        await transfers.transition(t.id, from, req.body.state, req.body.reason ? { reason: req.body.reason } : {});
      } catch (err) {
        if (!(err instanceof TransferStateError)) throw err;
        if (err.state !== req.body.state) throw conflict(`The transfer is ${err.state}`);
      }
      return reply.code(204).send();
    },
  );

  app.put('/transfers/:id/files/:n', { schema: { params: z.object({ id: TransferId, n: z.coerce.number().int().nonnegative().max(100_000) }) } }, async (req, reply) => {
    const t = await transfers.get(req.params.id);
    const file = t?.files[req.params.n];
    const link = await verified(req, file ? digestOfSha256(file.sha256) : undefined);
    if (!t || !file || t.from.site !== link.siteId) throw notFound('No such transfer file');
    if (t.state !== 'accepted') throw conflict(`The transfer is ${t.state}`);
    await transfers.set(t.id, { route: 'relay' });
    await relay.send(`${t.id}/${req.params.n}`, req.raw, file.size);
    return reply.code(204).send();
  });

};
