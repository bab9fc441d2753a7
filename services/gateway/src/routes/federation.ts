import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AddressInfo } from 'node:net';
import { Device, DeviceId, Invite, Item, ItemId, ItemList, Link, LinkList, OfferedFile, SearchQuery, SiteInfo, Transfer, TransferId, TransferState } from '@nondivy/contracts';
import { AppError, badInput } from '@nondivy/errors';
import { digestOfSha256 } from '@nondivy/federation';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { contentDispositionFor } from '@nondivy/http';
import { safeFilename } from '@nondivy/storage';
import { sendContent } from '../content-response.js';
import type { GatewayDeps } from '../deps.js';
import { type Federation, publicLink } from '../federation.js';
import { advertisedUrls } from '../lan-url.js';
import { requireAdmin } from '../plugins/authn.js';

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
 * sandboxed — so another site's bytes cannot run as a page of this origin. Its file name is a bare
 * string from the other site: it goes through the same name rule as our own uploads first.
 */
async function relayResponse(upstream: IncomingMessage, reply: FastifyReply, item: Item) {
  const headers: OutgoingHttpHeaders = {
    'content-disposition': contentDispositionFor(safeFilename(item.filename), 'attachment'),
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
export const federationRoutes: FastifyPluginAsyncZod<{ deps: GatewayDeps; federation: Federation; /** NONDIVY_PUBLIC_URL, when set. */ publicUrl?: string }> = async (
  app,
  { deps, federation, publicUrl },
) => {
  // Open to everyone, like the site's LAN announcement: a page shows the address as a QR code so a
  // phone joins by scanning (the address it was opened at may be the server's own loopback). The
  // addresses are the banner's, from the socket actually listening.
  app.get('/site', { schema: { tags: ['federation'], summary: 'This site: its id, name and the addresses it advertises', response: { 200: SiteInfo } } }, async () => {
    const address = app.server.address() as AddressInfo | null;
    const urls = address ? advertisedUrls(address.address, address.port, publicUrl) : publicUrl ? [publicUrl.replace(/\/$/, '')] : [];
    return { siteId: federation.siteId, name: federation.name, urls };
  });

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
 * Server-to-server routes under /federation/v1, called by linked sites only: every request is
 * verified (signature, key of the link, clock window, nonce, body digest) before anything else,
 * except the handshake, which is authorised by the invite's one-time secret.
 */
export const peerRoutes: FastifyPluginAsyncZod<{ deps: GatewayDeps }> = async (app, { deps }) => {
  const { federation, sharing } = deps;
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

  // Device sharing with linked sites: the rules (and what each side may do) live in `sharing`.
  app.get('/devices', { schema: { response: { 200: z.object({ devices: z.array(Device) }) } } }, async (req) => {
    await verified(req);
    return { devices: await sharing.devicesForSites() };
  });

  app.post(
    '/transfers',
    {
      schema: {
        body: z.strictObject({ id: TransferId, from: z.strictObject({ device: DeviceId, name: z.string().max(64) }), to: z.string().min(1).max(100), files: z.array(OfferedFile).min(1).max(1000) }),
        response: { 201: Transfer },
      },
    },
    async (req, reply) => reply.code(201).send(await sharing.offerFromSite(await verified(req), req.body)),
  );

  app.post(
    '/transfers/:id/state',
    { schema: { params: z.object({ id: TransferId }), body: z.strictObject({ state: TransferState, reason: z.string().max(500).optional() }) } },
    async (req, reply) => {
      await sharing.moveFromSite(await verified(req), req.params.id, req.body.state, req.body.reason);
      return reply.code(204).send();
    },
  );

  app.put('/transfers/:id/files/:n', { schema: { params: z.object({ id: TransferId, n: z.coerce.number().int().nonnegative().max(100_000) }) } }, async (req, reply) => {
    // The body is streamed: the signature covers the digest of the file offered, read first.
    const target = await sharing.fileForSite(req.params.id, req.params.n);
    const link = await verified(req, target ? digestOfSha256(target.file.sha256) : undefined);
    await sharing.relayFromSite(link, target, req.params.n, req.raw);
    return reply.code(204).send();
  });
};
