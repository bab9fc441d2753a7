import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Device, type OfferedFile, type Transfer, type TransferState } from '@nondivy/contracts';
import type { OfferLimits } from '@nondivy/config';
import { AppError, conflict, forbidden, notFound, unauthorized } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import { TransferStateError, type RedisDeviceStore, type RedisTransferStore, type StoredDevice, type StoredLink } from '@nondivy/state';
import { z } from 'zod';
import type { Federation, SiteAnswer } from '../federation.js';
import type { RelayHub } from '../relay.js';
import type { FastifyRequest } from 'fastify';
import { deviceFromRequest, issueDeviceToken } from './device-tokens.js';
import { LOCAL_MOVES, RELAY_FAILED, SITE_MOVES, type LocalMoveName, type Move, type Role } from './moves.js';
import { checkOfferSize, pendingCaps } from './offer-limits.js';
import type { RemoteTransfers } from './remote-transfers.js';

export interface SharingOptions {
  devices: RedisDeviceStore;
  transfers: RedisTransferStore;
  relay: RelayHub;
  /** Transfers with a device of a linked site. */
  remote: RemoteTransfers;
  federation: Federation;
  log: Logger;
  offerTtlMs: number;
  limits: OfferLimits;
}

/** A transfer as one of its devices on this site sees it, and that device's part in it. */
export interface Party {
  t: Transfer;
  me: StoredDevice;
  role: Role;
}

/** A file of a transfer, as offered (with its index). */
type TransferFile = Transfer['files'][number];

const publicDevice = (d: StoredDevice): Device => ({ id: d.id, name: d.name, owner: d.owner, since: d.since, lastSeen: d.lastSeen, directUrl: d.directUrl });

/** The owner a guest may see of a device: another guest's is "guest", a member's account stays hidden. */
export const ownerForGuest = (owner: string) => (owner === GUEST_OWNER ? owner : '');

/** The owner name of devices registered without a login (guest sharing). */
export const GUEST_OWNER = 'guest';

/**
 * What a party may see: the direct route's secret only goes to the sender; a guest's device never
 * sees the account name of a member's device.
 */
export function viewFor(t: Transfer, device: StoredDevice): Transfer {
  const own = t.from.device === device.id ? t : { ...t, directToken: null, directUrl: null };
  if (device.owner !== GUEST_OWNER) return own;
  return { ...own, from: { ...own.from, owner: ownerForGuest(own.from.owner) }, to: { ...own.to, owner: ownerForGuest(own.to.owner) } };
}

/** How long a download ticket may wait to be followed. */
export const TICKET_TTL_MS = 60_000;
/** How often the relay's progress is written to the transfer, at most. */
const PROGRESS_EVERY_MS = 1000;

const ticketHash = (secret: string) => createHash('sha256').update(secret).digest('base64url');

/** A Content-Disposition for an offered name: an ASCII fallback and the exact name (RFC 6266/8187). */
export function attachmentOf(name: string): string {
  const base = name.split(/[\\/]/).pop() || 'file';
  const ascii = base.replace(/[^\x20-\x7e]|["\\%;]/g, '_').slice(0, 200) || 'file';
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(base).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

/** Files crossing to a linked site are signed by their SHA-256: each must have one. */
function requireDigests(files: OfferedFile[]): void {
  if (files.length === 0 || files.some((f) => !f.sha256)) throw new AppError('bad_input', 'Files sent to a linked site need their SHA-256 (and a text cannot go alone)');
}

/** The words a relay failure is recorded (and answered) with. */
const relayReason = (err: unknown) => (err instanceof AppError ? err.message : 'The relay failed');

/**
 * Device sharing's rules, in one place: presence, offers (and their caps), who may move a transfer
 * where (a device of this site, or a linked site for its side), the relay's bytes and what a
 * failure does to the transfer, and transfers with devices of linked sites. Routes authenticate the
 * device or site, then call here; the store (libs/state) makes each state move atomically and is
 * called from the gateway only through this class.
 */
export class Sharing {
  private readonly caps: { maxSent: number; maxReceived: number };

  constructor(private readonly o: SharingOptions) {
    this.caps = pendingCaps(o.limits);
  }

  // ---- presence ------------------------------------------------------------------------------

  /** The device a request comes from by its `X-Device-Token`; null when none is sent, 401 when it is wrong. */
  deviceOf(req: FastifyRequest): Promise<StoredDevice | null> {
    return deviceFromRequest(this.o.devices, req);
  }

  /** Puts a device online; its token is returned here once and never stored. */
  async register(device: { name: string; owner: string; directUrl: string | null }): Promise<{ device: Device; token: string; heartbeatMs: number }> {
    const { id, token, tokenHash } = issueDeviceToken();
    const stored = await this.o.devices.register({ id, name: device.name, owner: device.owner, tokenHash, directUrl: device.directUrl });
    this.o.log.info({ device: id, name: stored.name, owner: stored.owner, direct: !!stored.directUrl }, 'device online');
    return { device: publicDevice(stored), token, heartbeatMs: Math.max(1000, Math.floor(this.o.devices.ttlMs / 3)) };
  }

  async heartbeat(me: StoredDevice): Promise<void> {
    if (!(await this.o.devices.heartbeat(me.id))) throw notFound('The device is offline: register it again');
  }

  async leave(me: StoredDevice): Promise<void> {
    await this.o.devices.remove(me.id);
    this.o.log.info({ device: me.id }, 'device offline');
  }

  /** Devices online on this site. */
  async devicesHere(): Promise<Device[]> {
    return (await this.o.devices.list()).map(publicDevice);
  }

  /** Devices online here and on every linked site that answers in time (each marked with its site). */
  async devicesEverywhere(): Promise<{ devices: Device[]; sites: SiteAnswer[] }> {
    const local = await this.devicesHere();
    const { federation } = this.o;
    const { results, sites } = await federation.fanOut((link) => federation.call(link, 'GET', '/federation/v1/devices', z.object({ devices: z.array(Device) })));
    return { devices: [...local, ...results.flatMap(({ link, value }) => value.devices.map((d) => ({ ...d, site: link.siteId })))], sites };
  }

  /** Devices as linked sites see them: names (to send to them), never their owners' accounts. */
  async devicesForSites(): Promise<Device[]> {
    return (await this.o.devices.list()).map((d) => ({ id: d.id, name: d.name, owner: '', since: d.since, lastSeen: d.lastSeen, directUrl: null }));
  }

  // ---- offers --------------------------------------------------------------------------------

  /**
   * `me` offers files to a device of this site (by id, or by a name only one device has) or of a
   * linked site (`DEVICE@SITE`). Refused when too big (413) or when either device already has its
   * cap of open offers (429).
   */
  async offer(me: StoredDevice, to: string, files: OfferedFile[], text?: string): Promise<Transfer> {
    checkOfferSize(files, this.o.limits);
    if (to.includes('@')) {
      if (text !== undefined) throw new AppError('bad_input', 'Text messages go to devices of this site only');
      return this.offerToSite(me, to, files);
    }
    const device = await this.o.devices.get(to);
    if (device) return this.offerHere(me, device, files, text);
    const byName = (await this.o.devices.list()).filter((d) => d.name === to);
    if (byName.length !== 1) throw conflict(byName.length ? `Several devices are named ${to}: use the device id` : `Device ${to} is not online`);
    return this.offerHere(me, byName[0]!, files, text);
  }

  private async offerHere(me: StoredDevice, to: StoredDevice, files: OfferedFile[], text?: string): Promise<Transfer> {
    if (to.id === me.id) throw conflict('A device cannot send to itself');
    const t = await this.o.transfers.create({
      id: randomBytes(16).toString('base64url'),
      from: { device: me.id, name: me.name, owner: me.owner },
      to: { device: to.id, name: to.name, owner: to.owner },
      files: files.map((f, n) => ({ ...f, n })),
      ...(text !== undefined ? { text } : {}),
      ttlMs: this.o.offerTtlMs,
    }, this.caps);
    this.o.log.info({ transfer: t.id, from: me.id, to: to.id, files: files.length, bytes: files.reduce((s, f) => s + f.size, 0), text: text !== undefined }, 'transfer offered');
    return t;
  }

  private async offerToSite(me: StoredDevice, to: string, files: OfferedFile[]): Promise<Transfer> {
    requireDigests(files);
    const { maxSent } = this.caps;
    // Checked before the linked site records the offer (and again, atomically, when we do).
    if ((await this.o.transfers.pendingCount(me.id, 'sent')) >= maxSent) {
      throw new AppError('rate_limited', `The sending device already has ${maxSent} open offers waiting for an answer: wait for answers, or withdraw some`, { retryAfter: 30 });
    }
    const t = await this.o.remote.offer({ device: me.id, name: me.name, owner: me.owner }, to, files, this.o.offerTtlMs, randomBytes(16).toString('base64url'), this.caps);
    this.o.log.info({ transfer: t.id, from: me.id, to, files: t.files.length }, 'transfer offered to a linked site');
    return t;
  }

  /**
   * A linked site's device offers files to one of ours, under the id that site chose. The same caps
   * as for our own devices; the sending id may never be taken for one of our devices.
   */
  async offerFromSite(link: StoredLink, offer: { id: string; from: { device: string; name: string }; to: string; files: OfferedFile[] }): Promise<Transfer> {
    checkOfferSize(offer.files, this.o.limits);
    requireDigests(offer.files);
    const to = (await this.o.devices.get(offer.to)) ?? (await this.o.devices.list()).find((d) => d.name === offer.to);
    if (!to) throw conflict(`Device ${offer.to} is not online`);
    if (await this.o.transfers.get(offer.id)) throw conflict('A transfer with this id exists');
    if (await this.o.devices.get(offer.from.device)) throw conflict('The sending device id is one of this site\'s devices');
    const t = await this.o.transfers.create({
      id: offer.id,
      from: { device: offer.from.device, name: offer.from.name, owner: '', site: link.siteId },
      to: { device: to.id, name: to.name, owner: to.owner },
      files: offer.files.map((f, n) => ({ ...f, n })),
      ttlMs: this.o.offerTtlMs,
    }, this.caps);
    this.o.log.info({ transfer: t.id, from: link.siteId, to: to.id }, 'transfer offered from a linked site');
    return t;
  }

  // ---- a device's transfers ------------------------------------------------------------------

  /** `me`'s part in transfer `id`; a party of a linked site is never a local device, whatever id it claims. */
  async party(me: StoredDevice, id: string): Promise<Party> {
    const t = await this.o.transfers.get(id);
    const sender = !t?.from.site && t?.from.device === me.id;
    const receiver = !t?.to.site && t?.to.device === me.id;
    if (!t || (!sender && !receiver)) throw notFound('No such transfer');
    return { t, me, role: sender ? 'sender' : 'receiver' };
  }

  /** One page of `me`'s transfers, newest first, as `me` may see them. */
  async list(me: StoredDevice, page: { limit: number; cursor?: string; state?: TransferState }): Promise<{ transfers: Transfer[]; nextCursor: string | null }> {
    const found = await this.o.transfers.forDevice(me.id, page);
    return { transfers: found.transfers.map((t) => viewFor(t, me)), nextCursor: found.nextCursor };
  }

  /** The receiver takes the offer; with a direct token (and a direct address), the sender may come straight to it. */
  accept(p: Party, directToken?: string): Promise<Transfer> {
    const fields: Record<string, string> = {};
    // A sender on another site cannot reach this LAN: its bytes come through the two gateways.
    if (directToken && p.me.directUrl && !p.t.from.site) {
      fields.directToken = directToken;
      fields.directUrl = p.me.directUrl;
    }
    return this.move(p, 'accept', fields);
  }

  reject(p: Party, reason?: string): Promise<Transfer> {
    return this.move(p, 'reject', { reason: reason ?? 'Rejected by the receiver' });
  }

  cancel(p: Party, reason?: string): Promise<Transfer> {
    return this.move(p, 'cancel', { reason: reason ?? `Cancelled by the ${p.role}` });
  }

  /** The outcome: delivered (the receiver, having verified the bytes) or failed (either device). */
  finish(p: Party, ok: boolean, reason?: string): Promise<Transfer> {
    return ok ? this.move(p, 'complete', {}) : this.move(p, 'fail', { reason: reason ?? `Failed at the ${p.role}` });
  }

  /** The sender says how the bytes go once the offer is accepted. */
  async chooseRoute(p: Party, route: 'direct' | 'relay'): Promise<void> {
    if (p.role !== 'sender') throw forbidden('Only the sending device chooses the route');
    if (p.t.state !== 'accepted') throw conflict(`The transfer is ${p.t.state}`);
    await this.o.transfers.set(p.t.id, { route });
  }

  private async move(p: Party, name: LocalMoveName, fields: Record<string, string>): Promise<Transfer> {
    const m = LOCAL_MOVES[name];
    if (m.by && p.role !== m.by.role) throw forbidden(m.by.refusal);
    const t = await this.transition(p.t.id, m, fields);
    this.changed(t);
    return viewFor(t, p.me);
  }

  /** A move made here: 404 when the transfer is gone, 409 when it is in a state the move does not leave. */
  private async transition(id: string, m: Move, fields: Record<string, string>): Promise<Transfer> {
    try {
      return await this.o.transfers.transition(id, m.from, m.to, fields);
    } catch (err) {
      if (err instanceof TransferStateError) {
        if (err.state === null) throw notFound('No such transfer');
        throw conflict(`The transfer is ${err.state}; it cannot be ${m.to}`);
      }
      throw err;
    }
  }

  /** Every change made on this site is logged and told to the linked site of the other device. */
  private changed(t: Transfer): void {
    this.o.log.info({ transfer: t.id, state: t.state, from: t.from.device, to: t.to.device, reason: t.reason ?? undefined }, 'transfer changed');
    this.o.remote.forward(t);
  }

  // ---- the relay -----------------------------------------------------------------------------

  /** File `n` of an accepted transfer, if `p` is the device (`as`) that relays it that way. */
  private relayFile(p: Party, n: number, as: Role): TransferFile {
    if (p.role !== as) throw forbidden(as === 'sender' ? 'Only the sending device uploads to the relay' : 'Only the receiving device downloads from the relay');
    if (p.t.state !== 'accepted') throw conflict(`The transfer is ${p.t.state}`);
    const file = p.t.files[n];
    if (!file) throw notFound('No such file in this transfer');
    return file;
  }

  /**
   * The sender's bytes of file `n` (`declaredLength`: its Content-Length, if any), piped to the
   * receiver here or to the receiving site. On failure the transfer is failed (and the other side
   * told) before the error is thrown on.
   */
  async relaySend(p: Party, n: number, body: IncomingMessage, declaredLength: number | undefined): Promise<void> {
    const file = this.relayFile(p, n, 'sender');
    if (declaredLength !== undefined && declaredLength !== file.size) throw new AppError('bad_input', `Content-Length must be the offered size (${file.size})`);
    const { t } = p;
    if (t.route !== 'relay') await this.o.transfers.set(t.id, { route: 'relay' });
    let lastWrite = 0;
    const onBytes = (sent: number) => {
      const now = Date.now();
      if (now - lastWrite < PROGRESS_EVERY_MS) return;
      lastWrite = now;
      this.o.transfers.progress(t.id, sent).catch(() => undefined);
    };
    try {
      if (t.to.site) await this.o.remote.send(t, n, body);
      else await this.o.relay.send(`${t.id}/${n}`, body, file.size, onBytes);
      await this.o.transfers.delivered(t.id, n, file.size).catch(() => undefined);
    } catch (err) {
      const reason = relayReason(err);
      this.o.log.info({ transfer: t.id, n, reason }, 'relayed file failed');
      await this.relayFailed(t.id, reason);
      throw err;
    }
    this.o.log.info({ transfer: t.id, n, bytes: file.size }, 'file relayed');
  }

  /**
   * Checks the receiver may take file `n` now (throwing before any answer is sent), and returns what
   * then pipes the sender's bytes into the receiver's response. That rejects with an AppError whose
   * message is the recorded reason, after the transfer is failed; the response may have started.
   */
  relayReceive(p: Party, n: number, byTicket = false): (res: ServerResponse) => Promise<void> {
    const file = this.relayFile(p, n, 'receiver');
    return async (res) => {
      try {
        await this.o.relay.receive(`${p.t.id}/${n}`, res, file.size, byTicket ? { 'content-disposition': attachmentOf(file.name), 'x-content-type-options': 'nosniff' } : {});
        if (byTicket) await this.deliveredToBrowser(p.t, n, file.size);
      } catch (err) {
        const reason = relayReason(err);
        await this.relayFailed(p.t.id, reason);
        throw err instanceof AppError ? err : new AppError('unavailable', reason, { cause: err });
      }
    };
  }

  /**
   * A browser receives through its download manager and cannot check a file's bytes itself, so the
   * gateway finishes for it: once the relay has delivered every offered byte of every file (each
   * counted exactly, and the response finished), the transfer is completed. It means "delivered to
   * the receiving browser", not "verified against a SHA-256": the page says so.
   */
  private async deliveredToBrowser(t: Transfer, n: number, size: number): Promise<void> {
    const done = await this.o.transfers.delivered(t.id, n, size).catch(() => 0);
    if (done < t.files.length) return;
    await this.o.transfers.transition(t.id, LOCAL_MOVES.complete.from, LOCAL_MOVES.complete.to, {}).then((moved) => this.changed(moved), () => undefined);
  }

  /**
   * A ticket for the receiving device to take file `n` by a plain link: its secret is returned once
   * (only its hash is kept), single use, for `TICKET_TTL_MS`.
   */
  async ticket(p: Party, n: number): Promise<{ secret: string; expiresAt: string }> {
    this.relayFile(p, n, 'receiver');
    const secret = randomBytes(32).toString('base64url');
    await this.o.transfers.putTicket(ticketHash(secret), { transfer: p.t.id, n, device: p.me.id }, TICKET_TTL_MS);
    return { secret, expiresAt: new Date(Date.now() + TICKET_TTL_MS).toISOString() };
  }

  /**
   * The party a download ticket stands for: taken (gone) at once, then checked against the file it
   * was given for and its device, which must still be online and the transfer's receiver.
   */
  async redeemTicket(id: string, n: number, secret: string): Promise<Party> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(secret)) throw unauthorized('Not a download ticket');
    const ticket = await this.o.transfers.takeTicket(ticketHash(secret));
    if (!ticket || ticket.transfer !== id || ticket.n !== n) throw unauthorized('This download link was used already, has expired or is for another file: start the download again from the page');
    const me = await this.o.devices.get(ticket.device);
    if (!me) throw unauthorized('The receiving device is offline');
    return this.party(me, id);
  }

  /** Best effort: the transfer may have moved on (cancelled, say) meanwhile. */
  private relayFailed(id: string, reason: string): Promise<void> {
    return this.o.transfers.transition(id, RELAY_FAILED.from, RELAY_FAILED.to, { reason }).then((t) => this.changed(t), () => undefined);
  }

  // ---- linked sites' side --------------------------------------------------------------------

  /**
   * A linked site moves a transfer it is a party of, within what its side may do (SITE_MOVES). A
   * move already made (the same state) is not an error: both sites may report the same end.
   */
  async moveFromSite(link: StoredLink, id: string, state: TransferState, reason?: string): Promise<void> {
    const t = await this.o.transfers.get(id);
    if (!t || (t.from.site !== link.siteId && t.to.site !== link.siteId)) throw notFound('No such transfer');
    const side: Role = t.from.site === link.siteId ? 'sender' : 'receiver';
    const from = SITE_MOVES[side][state];
    if (!from) throw new AppError('forbidden', `The ${side}'s site cannot set state ${state}`);
    try {
      await this.o.transfers.transition(t.id, from, state, reason ? { reason } : {});
    } catch (err) {
      if (!(err instanceof TransferStateError)) throw err;
      if (err.state !== state) throw conflict(`The transfer is ${err.state}`);
    }
  }

  /** Transfer `id` and its file `n`, if both exist: a site's upload is verified against that file's digest. */
  async fileForSite(id: string, n: number): Promise<{ t: Transfer; file: TransferFile & { sha256: string } } | null> {
    const t = await this.o.transfers.get(id);
    const file = t?.files[n];
    return t && file?.sha256 ? { t, file: { ...file, sha256: file.sha256 } } : null;
  }

  /** A sending site's bytes of file `n` (found by `fileForSite`), piped to our receiving device. */
  async relayFromSite(link: StoredLink, target: { t: Transfer; file: TransferFile } | null, n: number, body: IncomingMessage): Promise<void> {
    if (!target || target.t.from.site !== link.siteId) throw notFound('No such transfer file');
    const { t, file } = target;
    if (t.state !== 'accepted') throw conflict(`The transfer is ${t.state}`);
    await this.o.transfers.set(t.id, { route: 'relay' });
    // Verified on the way (the offer is signed by its SHA-256): a browser receiver cannot check it.
    await this.o.relay.send(`${t.id}/${n}`, body, file.size, undefined, file.sha256);
  }
}
