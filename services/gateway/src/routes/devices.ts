import {
  AcceptTransferRequest,
  CreateTransferRequest,
  Device,
  DeviceId,
  DownloadTicketResponse,
  FinishTransferRequest,
  ReasonRequest,
  RegisterDeviceRequest,
  RegisterDeviceResponse,
  RouteTransferRequest,
  Transfer,
  TransferId,
  TransferState,
} from '@nondivy/contracts';
import { type AppError, forbidden, unauthorized } from '@nondivy/errors';
import type { StoredDevice } from '@nondivy/state';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ownerForGuest, viewFor, type Sharing } from '../sharing/sharing.js';

export interface DeviceRouteOptions {
  /** Device sharing's rules: every offer, state move and relayed byte goes through it. */
  sharing: Sharing;
  /** Whether guests (no login) may register devices and see them. */
  guestSharing: boolean;
}

/** Transfers listed per page by default, and at most. */
const TRANSFER_PAGE = 20;
const TRANSFER_PAGE_MAX = 100;

const TransferParams = z.object({ id: TransferId });
const FileParams = z.object({ id: TransferId, n: z.coerce.number().int().nonnegative().max(100_000) });

/**
 * Devices and device-to-device transfers: presence (register, heartbeat, list, leave), offers
 * (send, accept, reject, cancel, finish) and the relay (PUT and GET of one file, piped together).
 * Each route authenticates the device, then asks `sharing`, which holds the rules.
 */
export const deviceRoutes: FastifyPluginAsyncZod<DeviceRouteOptions> = async (app, { sharing, guestSharing }) => {
  const device = async (req: FastifyRequest): Promise<StoredDevice> => {
    const d = await sharing.deviceOf(req);
    if (!d) throw unauthorized('Send this device\'s X-Device-Token');
    return d;
  };
  const party = async (req: FastifyRequest, id: string) => sharing.party(await device(req), id);
  const ownDevice = async (req: FastifyRequest, id: string) => {
    const me = await device(req);
    if (me.id !== id) throw forbidden('Not this device\'s token');
    return me;
  };

  app.post(
    '/devices',
    { schema: { tags: ['devices'], summary: 'Register this device (members; guests when guest sharing is on)', body: RegisterDeviceRequest, response: { 201: RegisterDeviceResponse } } },
    async (req, reply) => {
      if (!req.user && !guestSharing) throw unauthorized('Log in to share with other devices');
      return reply.code(201).send(await sharing.register({ name: req.body.name, owner: req.user?.username ?? 'guest', directUrl: req.body.directUrl ?? null }));
    },
  );

  app.get(
    '/devices',
    {
      schema: {
        tags: ['devices'],
        summary: 'Devices online on this site (scope=federated: and on linked sites, each marked with its site)',
        querystring: z.object({ scope: z.enum(['local', 'federated']).optional() }),
        response: { 200: z.object({ devices: z.array(Device), sites: z.array(z.object({ siteId: z.string(), name: z.string(), ok: z.boolean(), error: z.string().optional() })).optional() }) },
      },
    },
    async (req) => {
      if (!req.user && !guestSharing) throw unauthorized('Log in to see the devices');
      const found = req.query.scope === 'federated' ? await sharing.devicesEverywhere() : { devices: await sharing.devicesHere() };
      // A guest sees the devices online (to send to them) but not the members' account names.
      return req.user ? found : { ...found, devices: found.devices.map((d) => ({ ...d, owner: ownerForGuest(d.owner) })) };
    },
  );

  app.put('/devices/:id/heartbeat', { schema: { tags: ['devices'], summary: 'Stay online', params: z.object({ id: DeviceId }) } }, async (req, reply) => {
    await sharing.heartbeat(await ownDevice(req, req.params.id));
    return reply.code(204).send();
  });

  app.delete('/devices/:id', { schema: { tags: ['devices'], summary: 'Go offline', params: z.object({ id: DeviceId }) } }, async (req, reply) => {
    await sharing.leave(await ownDevice(req, req.params.id));
    return reply.code(204).send();
  });

  app.post('/transfers', { schema: { tags: ['transfers'], summary: 'Offer files to a device', body: CreateTransferRequest, response: { 201: Transfer } } }, async (req, reply) => {
    const me = await device(req);
    if (me.id !== req.body.from) throw forbidden('`from` must be the device whose token is sent');
    return reply.code(201).send(viewFor(await sharing.offer(me, req.body.to, req.body.files, req.body.text), me));
  });

  app.get(
    '/transfers',
    {
      schema: {
        tags: ['transfers'],
        summary: 'This device\'s transfers, newest first, a page at a time (follow `nextCursor`; `state` keeps only those in that state)',
        querystring: z.object({
          device: DeviceId.optional(),
          state: TransferState.optional(),
          limit: z.coerce.number().int().min(1).max(TRANSFER_PAGE_MAX).default(TRANSFER_PAGE),
          cursor: z.string().max(200).optional(),
        }),
        response: { 200: z.object({ transfers: z.array(Transfer), nextCursor: z.string().nullable() }) },
      },
    },
    async (req) => {
      const me = await device(req);
      if (req.query.device && req.query.device !== me.id) throw forbidden('Not this device\'s token');
      return sharing.list(me, { limit: req.query.limit, cursor: req.query.cursor, state: req.query.state });
    },
  );

  app.get('/transfers/:id', { schema: { tags: ['transfers'], summary: 'One transfer', params: TransferParams, response: { 200: Transfer } } }, async (req) => {
    const { t, me } = await party(req, req.params.id);
    return viewFor(t, me);
  });

  app.post('/transfers/:id/accept', { schema: { tags: ['transfers'], summary: 'Accept an offer (the receiving device)', params: TransferParams, body: AcceptTransferRequest, response: { 200: Transfer } } }, async (req) =>
    sharing.accept(await party(req, req.params.id), req.body.directToken),
  );

  app.post('/transfers/:id/reject', { schema: { tags: ['transfers'], summary: 'Reject an offer (the receiving device)', params: TransferParams, body: ReasonRequest, response: { 200: Transfer } } }, async (req) =>
    sharing.reject(await party(req, req.params.id), req.body.reason),
  );

  app.delete('/transfers/:id', { schema: { tags: ['transfers'], summary: 'Cancel a transfer (either device)', params: TransferParams, body: ReasonRequest.optional() } }, async (req) =>
    sharing.cancel(await party(req, req.params.id), req.body?.reason),
  );

  app.post('/transfers/:id/route', { schema: { tags: ['transfers'], summary: 'Say how the bytes go (the sending device)', params: TransferParams, body: RouteTransferRequest } }, async (req, reply) => {
    await sharing.chooseRoute(await party(req, req.params.id), req.body.route);
    return reply.code(204).send();
  });

  app.post('/transfers/:id/finish', { schema: { tags: ['transfers'], summary: 'Report the outcome (receiver: verified; either: failed)', params: TransferParams, body: FinishTransferRequest, response: { 200: Transfer } } }, async (req) =>
    sharing.finish(await party(req, req.params.id), req.body.ok, req.body.reason),
  );

  // The relay. The sender's body is not parsed: it is piped to the receiver as it arrives.
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  app.put('/transfers/:id/files/:n', { schema: { tags: ['transfers'], summary: 'Relay: send one file (the sending device)', params: FileParams } }, async (req, reply) => {
    const length = req.headers['content-length'];
    await sharing.relaySend(await party(req, req.params.id), req.params.n, req.raw, length === undefined ? undefined : Number(length));
    return reply.code(204).send();
  });

  app.post(
    '/transfers/:id/files/:n/ticket',
    { schema: { tags: ['transfers'], summary: 'A single-use link (one minute) for the receiving device to take one relayed file through a browser\'s download manager', params: FileParams, response: { 200: DownloadTicketResponse } } },
    async (req) => {
      const { secret, expiresAt } = await sharing.ticket(await party(req, req.params.id), req.params.n);
      return { url: `/api/v1/transfers/${req.params.id}/files/${req.params.n}?ticket=${secret}`, expiresAt };
    },
  );

  app.get(
    '/transfers/:id/files/:n',
    {
      schema: {
        tags: ['transfers'],
        summary: 'Relay: receive one file (the receiving device: its X-Device-Token, or `ticket` from POST …/ticket, answered as an attachment)',
        params: FileParams,
        querystring: z.object({ ticket: z.string().max(100).optional() }),
      },
    },
    async (req, reply) => {
    const byTicket = req.query.ticket !== undefined && req.headers['x-device-token'] === undefined;
    const p = byTicket ? await sharing.redeemTicket(req.params.id, req.params.n, req.query.ticket!) : await party(req, req.params.id);
    const deliver = sharing.relayReceive(p, req.params.n, byTicket);
    reply.hijack();
    try {
      await deliver(reply.raw);
    } catch (err) {
      // The transfer is already failed; the receiver hears why if its answer has not started.
      const failure = err as AppError;
      if (!reply.raw.headersSent) {
        const status = failure.kind === 'conflict' ? 409 : 504;
        reply.raw.writeHead(status, { 'content-type': 'application/problem+json' });
        reply.raw.end(JSON.stringify({ type: 'about:blank', title: 'Relay failed', status, detail: failure.message }));
      } else reply.raw.destroy();
    }
    },
  );
};
