import { z } from 'zod';
import { Sha256 } from './library.js';

/**
 * Devices and device-to-device transfers. A device is one running client (a phone, a laptop, the
 * `nondivy` CLI): it registers, heartbeats while it is online, and receives offers. Its token is
 * given once at registration and sent as `X-Device-Token` on device-scoped calls (accept, reject,
 * relay, heartbeat). Private files never touch the server's storage: they go straight from device to
 * device, or through the gateway's relay, a pipe.
 */

/** Device ids: 16 url-safe characters (96 random bits). */
export const DeviceId = z.string().regex(/^[A-Za-z0-9_-]{16}$/, 'not a valid device id');
/** Transfer ids: 22 url-safe characters (128 random bits). */
export const TransferId = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'not a valid transfer id');

export const DeviceName = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'no control characters');

/** Where a device accepts direct transfers while it receives (http://lan-address:port). */
export const DirectUrl = z.url({ protocol: /^https?$/ }).max(200);

export const Device = z.object({
  id: DeviceId,
  name: z.string(),
  owner: z.string(),
  /** When it came online (registered). */
  since: z.iso.datetime(),
  lastSeen: z.iso.datetime(),
  /** Set for devices that can receive directly. */
  directUrl: z.string().nullable(),
  /** The site of a device of a linked site (federated lists). */
  site: z.string().optional(),
});
export type Device = z.infer<typeof Device>;

export const RegisterDeviceRequest = z.strictObject({
  name: DeviceName,
  directUrl: DirectUrl.optional(),
});

export const RegisterDeviceResponse = z.object({
  device: Device,
  /** Sent back as `X-Device-Token`; shown once. */
  token: z.string(),
  /** Heartbeat at least this often (ms) to stay online. */
  heartbeatMs: z.number().int().positive(),
});

export const TRANSFER_STATES = ['offered', 'accepted', 'rejected', 'cancelled', 'expired', 'completed', 'failed'] as const;
export const TransferState = z.enum(TRANSFER_STATES);
export type TransferState = z.infer<typeof TransferState>;
export const FINAL_TRANSFER_STATES: readonly TransferState[] = ['rejected', 'cancelled', 'expired', 'completed', 'failed'];

/** Text messages are capped: they sit in the transfer's record until it ends. */
export const MAX_TRANSFER_TEXT = 4000;
export const TransferText = z
  .string()
  .min(1)
  .max(MAX_TRANSFER_TEXT, `A text may have at most ${MAX_TRANSFER_TEXT} characters`)
  .refine((t) => t.trim().length > 0, 'The text is empty')
  .refine((t) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(t), 'No control characters other than tabs and line breaks');

export const OfferedFile = z.strictObject({
  /** The name as the sender has it; the receiver sanitises it again before writing. */
  name: z.string().min(1).max(1000),
  size: z.number().int().nonnegative().max(2 ** 50),
  /**
   * The file's SHA-256, which a receiver that writes the file checks. Optional: a browser sends
   * without it (hashing a file of several GiB first would read it twice); the relay still counts
   * every byte against `size`.
   */
  sha256: Sha256.optional(),
});
export type OfferedFile = z.infer<typeof OfferedFile>;

export const CreateTransferRequest = z.strictObject({
  /** The sending device (its token must be sent as X-Device-Token). */
  from: DeviceId,
  /** The receiving device: an id, or `name` / `id@site` for a device of a linked site. */
  to: z.string().min(1).max(200),
  /** The files; none when the offer is a text message alone. */
  files: z.array(OfferedFile).max(1000),
  /** A short text or link shown to the receiver (kept only until the transfer ends). */
  text: TransferText.optional(),
}).refine((o) => o.files.length > 0 || o.text !== undefined, { message: 'Offer at least one file or a text', path: ['files'] });

export const TransferParty = z.object({ device: z.string(), name: z.string(), owner: z.string(), site: z.string().optional() });

export const Transfer = z.object({
  id: TransferId,
  from: TransferParty,
  to: TransferParty,
  files: z.array(OfferedFile.extend({ n: z.number().int().nonnegative() })),
  state: TransferState,
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  /** How the bytes go, once the sender chose: straight to the receiver, or through the gateway. */
  route: z.enum(['direct', 'relay']).nullable(),
  /** Given to the sender once accepted and the receiver can be reached directly. */
  directUrl: z.string().nullable(),
  /** Given to the sender once accepted: the bearer token the receiver's direct endpoint expects. */
  directToken: z.string().nullable(),
  /** Why it failed or was rejected/cancelled, in words. */
  reason: z.string().nullable(),
  /** The offer's text message, while the transfer is open (dropped when it ends). */
  text: z.string().nullable().optional(),
  /** Relayed so far: files the receiver got whole, and bytes (updated about once a second). */
  progress: z.object({ files: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() }).optional(),
});
export type Transfer = z.infer<typeof Transfer>;

/**
 * A link for a browser to take one relayed file through its download manager (a link cannot carry
 * X-Device-Token): single use, short-lived, for one file of one accepted transfer, bound to the
 * receiving device (which must still be online when the link is followed).
 */
export const DownloadTicketResponse = z.object({
  /** The relay address of the file, with the ticket in its query (`?ticket=`). */
  url: z.string(),
  expiresAt: z.iso.datetime(),
});

export const AcceptTransferRequest = z.strictObject({
  /** A secret the receiver's direct endpoint will require from the sender (omit: relay only). */
  directToken: z.string().min(20).max(200).optional(),
});

export const RouteTransferRequest = z.strictObject({ route: z.enum(['direct', 'relay']) });

export const FinishTransferRequest = z.strictObject({
  ok: z.boolean(),
  reason: z.string().max(500).optional(),
});

export const ReasonRequest = z.strictObject({ reason: z.string().max(500).optional() });

/** Presence and transfer events, on their own stream (the library's is separate). */
export const PresenceEvent = z.object({
  type: z.enum(['device.online', 'device.offline']),
  id: DeviceId,
  name: z.string(),
  owner: z.string(),
  at: z.iso.datetime(),
});
export type PresenceEvent = z.infer<typeof PresenceEvent>;

export const TransferEvent = z.object({
  type: z.literal('transfer.changed'),
  id: TransferId,
  state: TransferState,
  from: z.string(),
  to: z.string(),
  at: z.iso.datetime(),
});
export type TransferEvent = z.infer<typeof TransferEvent>;
