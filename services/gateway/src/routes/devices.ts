import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  AcceptTransferRequest,
  CreateTransferRequest,
  Device,
  DeviceId,
  FinishTransferRequest,
  ReasonRequest,
  RegisterDeviceRequest,
  RegisterDeviceResponse,
  RouteTransferRequest,
  Transfer,
  TransferId,
  TransferState,
} from '@nondivy/contracts';
import type { OfferLimits } from '@nondivy/config';
import { AppError, conflict, forbidden, notFound, tooLarge, unauthorized } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import { TransferStateError, type RedisDeviceStore, type RedisTransferStore, type StoredDevice } from '@nondivy/state';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RelayHub } from '../relay.js';
import type { Federation } from '../federation.js';
import type { RemoteTransfers } from './federation.js';

export interface DeviceRouteOptions {
  devices: RedisDeviceStore;
  transfers: RedisTransferStore;
  relay: RelayHub;
  log: Logger;
  guestSharing: boolean;
  offerTtlMs: number;
  offerLimits: OfferLimits;
  federation: Federation;
  /** Transfers with a device of a linked site. */
  remote: RemoteTransfers;
}

const hashToken = (secret: string) => createHash('sha256').update(secret).digest();

/**
 * The device a request comes from, by its `X-Device-Token` (`<device id>.<secret>`), or null when
 * none is sent. A token that is sent but wrong is a 401, never silently "no device".
 */
export async function deviceFromRequest(devices: RedisDeviceStore, req: FastifyRequest): Promise<StoredDevice | null> {
  const header = req.headers['x-device-token'];
  if (header === undefined) return null;
  const m = typeof header === 'string' ? /^([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{20,100})$/.exec(header.trim()) : null;
  if (!m) throw unauthorized('Malformed X-Device-Token');
  const device = await devices.get(m[1]!);
  if (!device) throw new AppError('unauthorized', 'Unknown or expired device: register it again');
  const expected = Buffer.from(device.tokenHash, 'base64url');
  const given = hashToken(m[2]!);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw unauthorized('Wrong device token');
  return device;
}

const publicDevice = (d: StoredDevice): Device => ({ id: d.id, name: d.name, owner: d.owner, since: d.since, lastSeen: d.lastSeen, directUrl: d.directUrl });

/** What a party may see: the direct route's secret only goes to the sender. */
function viewFor(t: Transfer, device: StoredDevice): Transfer {
  return t.from.device === device.id ? t : { ...t, directToken: null, directUrl: null };
}

function stateError(err: unknown, wanted: string): never {
  if (err instanceof TransferStateError) {
    if (err.state === null) throw notFound('No such transfer');
    throw conflict(`The transfer is ${err.state}; it cannot be ${wanted}`);
  }
  throw err;
}

/**
 * Refuses an offer too big to keep: its file list is stored, listed to the receiver and sent to
 * linked sites whole, so both its length and its size are bounded.
 */
export function checkOfferSize(files: { name: string }[], limits: Pick<OfferLimits, 'maxFiles' | 'maxBytes'>): void {
  if (files.length > limits.maxFiles) throw tooLarge(`An offer may hold at most ${limits.maxFiles} files (this one has ${files.length}): send them in several offers`);
  const bytes = Buffer.byteLength(JSON.stringify(files));
  if (bytes > limits.maxBytes) throw tooLarge(`An offer's file list may take at most ${limits.maxBytes} bytes (this one takes ${bytes}): send the files in several offers`);
}

/** Transfers listed per page by default, and at most. */
const TRANSFER_PAGE = 20;
const TRANSFER_PAGE_MAX = 100;

const TransferParams = z.object({ id: TransferId });
const FileParams = z.object({ id: TransferId, n: z.coerce.number().int().nonnegative().max(100_000) });

/**
 * Devices and device-to-device transfers: presence (register, heartbeat, list, leave), offers
 * (send, accept, reject, cancel, finish) and the relay (PUT and GET of one file, piped together).
 */
export const deviceRoutes: FastifyPluginAsyncZod<DeviceRouteOptions> = async (app, opts) => {
  const { devices, transfers, relay, log, remote } = opts;
  const caps = { maxSent: opts.offerLimits.maxPendingPerSender, maxReceived: opts.offerLimits.maxPendingPerReceiver };
  const device = async (req: FastifyRequest): Promise<StoredDevice> => {
    const d = await deviceFromRequest(devices, req);
    if (!d) throw unauthorized('Send this device\'s X-Device-Token');
    return d;
  };
  const party = async (req: FastifyRequest, id: string): Promise<{ t: Transfer; me: StoredDevice; role: 'sender' | 'receiver' }> => {
    const me = await device(req);
    const t = await transfers.get(id);
    // A party of a linked site is never a local device, whatever id it claims.
    const sender = !t?.from.site && t?.from.device === me.id;
    const receiver = !t?.to.site && t?.to.device === me.id;
    if (!t || (!sender && !receiver)) throw notFound('No such transfer');
    return { t, me, role: sender ? 'sender' : 'receiver' };
  };
  const changed = (t: Transfer, fromPeer = false) => {
    log.info({ transfer: t.id, state: t.state, from: t.from.device, to: t.to.device, reason: t.reason ?? undefined }, 'transfer changed');
    if (!fromPeer) remote.forward(t);
  };

  app.post(
    '/devices',
    { schema: { tags: ['devices'], summary: 'Register this device (members; guests when guest sharing is on)', body: RegisterDeviceRequest, response: { 201: RegisterDeviceResponse } } },
    async (req, reply) => {
      if (!req.user && !opts.guestSharing) throw unauthorized('Log in to share with other devices');
      const id = randomBytes(12).toString('base64url');
      const secret = randomBytes(32).toString('base64url');
      const stored = await devices.register({
        id,
        name: req.body.name,
        owner: req.user?.username ?? 'guest',
        tokenHash: hashToken(secret).toString('base64url'),
        directUrl: req.body.directUrl ?? null,
      });
      log.info({ device: id, name: stored.name, owner: stored.owner, direct: !!stored.directUrl }, 'device online');
      return reply.code(201).send({ device: publicDevice(stored), token: `${id}.${secret}`, heartbeatMs: Math.max(1000, Math.floor(devices.ttlMs / 3)) });
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
      if (!req.user && !opts.guestSharing) throw unauthorized('Log in to see the devices');
      const local = (await devices.list()).map(publicDevice);
      if (req.query.scope !== 'federated') return { devices: local };
      const { results, sites } = await opts.federation.fanOut((link) => opts.federation.call(link, 'GET', '/federation/v1/devices', z.object({ devices: z.array(Device) })));
      return { devices: [...local, ...results.flatMap(({ link, value }) => value.devices.map((d) => ({ ...d, site: link.siteId })))], sites };
    },
  );

  app.put('/devices/:id/heartbeat', { schema: { tags: ['devices'], summary: 'Stay online', params: z.object({ id: DeviceId }) } }, async (req, reply) => {
    const me = await device(req);
    if (me.id !== req.params.id) throw forbidden('Not this device\'s token');
    if (!(await devices.heartbeat(me.id))) throw notFound('The device is offline: register it again');
    return reply.code(204).send();
  });

  app.delete('/devices/:id', { schema: { tags: ['devices'], summary: 'Go offline', params: z.object({ id: DeviceId }) } }, async (req, reply) => {
    const me = await device(req);
    if (me.id !== req.params.id) throw forbidden('Not this device\'s token');
    await devices.remove(me.id);
    log.info({ device: me.id }, 'device offline');
    return reply.code(204).send();
  });

  app.post('/transfers', { schema: { tags: ['transfers'], summary: 'Offer files to a device', body: CreateTransferRequest, response: { 201: Transfer } } }, async (req, reply) => {
    const me = await device(req);
    if (me.id !== req.body.from) throw forbidden('`from` must be the device whose token is sent');
    checkOfferSize(req.body.files, opts.offerLimits);
    if (req.body.to.includes('@')) {
      // Checked before the linked site records the offer (and again, atomically, when we do).
      if ((await transfers.pendingCount(me.id, 'sent')) >= caps.maxSent) {
        throw new AppError('rate_limited', `The sending device already has ${caps.maxSent} open offers waiting for an answer: wait for answers, or withdraw some`, { retryAfter: 30 });
      }
      const t = await remote.offer({ device: me.id, name: me.name, owner: me.owner }, req.body.to, req.body.files, opts.offerTtlMs, randomBytes(16).toString('base64url'), caps);
      log.info({ transfer: t.id, from: me.id, to: req.body.to, files: t.files.length }, 'transfer offered to a linked site');
      return reply.code(201).send(t);
    }
    const to = await devices.get(req.body.to);
    if (!to) {
      const byName = (await devices.list()).filter((d) => d.name === req.body.to);
      if (byName.length !== 1) throw conflict(byName.length ? `Several devices are named ${req.body.to}: use the device id` : `Device ${req.body.to} is not online`);
      return reply.code(201).send(await offer(me, byName[0]!, req.body.files));
    }
    return reply.code(201).send(await offer(me, to, req.body.files));
  });

  async function offer(me: StoredDevice, to: StoredDevice, files: z.infer<typeof CreateTransferRequest>['files']) {
    if (to.id === me.id) throw conflict('A device cannot send to itself');
    const t = await transfers.create({
      id: randomBytes(16).toString('base64url'),
      from: { device: me.id, name: me.name, owner: me.owner },
      to: { device: to.id, name: to.name, owner: to.owner },
      files: files.map((f, n) => ({ ...f, n })),
      ttlMs: opts.offerTtlMs,
    }, caps);
    log.info({ transfer: t.id, from: me.id, to: to.id, files: files.length, bytes: files.reduce((s, f) => s + f.size, 0) }, 'transfer offered');
    return t;
  }

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
      const page = await transfers.forDevice(me.id, { limit: req.query.limit, cursor: req.query.cursor, state: req.query.state });
      return { transfers: page.transfers.map((t) => viewFor(t, me)), nextCursor: page.nextCursor };
    },
  );

  app.get('/transfers/:id', { schema: { tags: ['transfers'], summary: 'One transfer', params: TransferParams, response: { 200: Transfer } } }, async (req) => {
    const { t, me } = await party(req, req.params.id);
    return viewFor(t, me);
  });

  const move = async (id: string, from: TransferState[], to: TransferState, fields: Record<string, string>, wanted: string) => {
    try {
      const t = await transfers.transition(id, from, to, fields);
      changed(t);
      return t;
    } catch (err) {
      return stateError(err, wanted);
    }
  };

  app.post('/transfers/:id/accept', { schema: { tags: ['transfers'], summary: 'Accept an offer (the receiving device)', params: TransferParams, body: AcceptTransferRequest, response: { 200: Transfer } } }, async (req) => {
    const { t, me, role } = await party(req, req.params.id);
    if (role !== 'receiver') throw forbidden('Only the receiving device can accept');
    const fields: Record<string, string> = {};
    // A sender on another site cannot reach this LAN: its bytes come through the two gateways.
    if (req.body.directToken && me.directUrl && !t.from.site) {
      fields.directToken = req.body.directToken;
      fields.directUrl = me.directUrl;
    }
    return viewFor(await move(t.id, ['offered'], 'accepted', fields, 'accepted'), me);
  });

  app.post('/transfers/:id/reject', { schema: { tags: ['transfers'], summary: 'Reject an offer (the receiving device)', params: TransferParams, body: ReasonRequest, response: { 200: Transfer } } }, async (req) => {
    const { t, me, role } = await party(req, req.params.id);
    if (role !== 'receiver') throw forbidden('Only the receiving device can reject');
    return viewFor(await move(t.id, ['offered'], 'rejected', { reason: req.body.reason ?? 'Rejected by the receiver' }, 'rejected'), me);
  });

  app.delete('/transfers/:id', { schema: { tags: ['transfers'], summary: 'Cancel a transfer (either device)', params: TransferParams, body: ReasonRequest.optional() } }, async (req) => {
    const { t, me, role } = await party(req, req.params.id);
    const reason = req.body?.reason ?? `Cancelled by the ${role}`;
    return viewFor(await move(t.id, ['offered', 'accepted'], 'cancelled', { reason }, 'cancelled'), me);
  });

  app.post('/transfers/:id/route', { schema: { tags: ['transfers'], summary: 'Say how the bytes go (the sending device)', params: TransferParams, body: RouteTransferRequest } }, async (req, reply) => {
    const { t, role } = await party(req, req.params.id);
    if (role !== 'sender') throw forbidden('Only the sending device chooses the route');
    if (t.state !== 'accepted') throw conflict(`The transfer is ${t.state}`);
    await transfers.set(t.id, { route: req.body.route });
    return reply.code(204).send();
  });

  app.post('/transfers/:id/finish', { schema: { tags: ['transfers'], summary: 'Report the outcome (receiver: verified; either: failed)', params: TransferParams, body: FinishTransferRequest, response: { 200: Transfer } } }, async (req) => {
    const { t, me, role } = await party(req, req.params.id);
    if (req.body.ok) {
      if (role !== 'receiver') throw forbidden('Only the receiving device confirms delivery');
      return viewFor(await move(t.id, ['accepted'], 'completed', {}, 'completed'), me);
    }
    return viewFor(await move(t.id, ['offered', 'accepted'], 'failed', { reason: req.body.reason ?? `Failed at the ${role}` }, 'failed'), me);
  });

  // The relay. The sender's body is not parsed: it is piped to the receiver as it arrives.
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  const relayable = async (req: FastifyRequest, id: string, n: number, as: 'sender' | 'receiver') => {
    const { t, role } = await party(req, id);
    if (role !== as) throw forbidden(as === 'sender' ? 'Only the sending device uploads to the relay' : 'Only the receiving device downloads from the relay');
    if (t.state !== 'accepted') throw conflict(`The transfer is ${t.state}`);
    const file = t.files[n];
    if (!file) throw notFound('No such file in this transfer');
    return { t, file, key: `${t.id}/${n}` };
  };
  const fail = (id: string, reason: string) =>
    transfers.transition(id, ['accepted'], 'failed', { reason }).then(changed, () => undefined);

  app.put('/transfers/:id/files/:n', { schema: { tags: ['transfers'], summary: 'Relay: send one file (the sending device)', params: FileParams } }, async (req, reply) => {
    const { t, file, key } = await relayable(req, req.params.id, req.params.n, 'sender');
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) !== file.size) throw new AppError('bad_input', `Content-Length must be the offered size (${file.size})`);
    if (t.route !== 'relay') await transfers.set(t.id, { route: 'relay' });
    try {
      if (t.to.site) await remote.send(t, req.params.n, req.raw);
      else await relay.send(key, req.raw, file.size);
    } catch (err) {
      const reason = err instanceof AppError ? err.message : 'The relay failed';
      log.info({ transfer: t.id, n: req.params.n, reason }, 'relayed file failed');
      await fail(t.id, reason);
      throw err;
    }
    log.info({ transfer: t.id, n: req.params.n, bytes: file.size }, 'file relayed');
    return reply.code(204).send();
  });

  app.get('/transfers/:id/files/:n', { schema: { tags: ['transfers'], summary: 'Relay: receive one file (the receiving device)', params: FileParams } }, async (req, reply) => {
    const { t, file, key } = await relayable(req, req.params.id, req.params.n, 'receiver');
    reply.hijack();
    try {
      await relay.receive(key, reply.raw, file.size);
    } catch (err) {
      const reason = err instanceof AppError ? err.message : 'The relay failed';
      await fail(t.id, reason);
      if (!reply.raw.headersSent) {
        const status = err instanceof AppError && err.kind === 'conflict' ? 409 : 504;
        reply.raw.writeHead(status, { 'content-type': 'application/problem+json' });
        reply.raw.end(JSON.stringify({ type: 'about:blank', title: 'Relay failed', status, detail: reason }));
      } else reply.raw.destroy();
    }
  });
};
