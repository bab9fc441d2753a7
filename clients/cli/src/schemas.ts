import { Device, Transfer } from '@nondivy/contracts';
import { z } from 'zod';

/** GET /devices. */
export const DeviceList = z.object({ devices: z.array(Device) });
/** GET /transfers?device=… */
export const TransferList = z.object({ transfers: z.array(Transfer) });

/** A link to another site, as GET /federation/links shows it. */
export const LinkView = z.object({
  siteId: z.string(),
  name: z.string(),
  url: z.string(),
  state: z.enum(['online', 'unreachable']),
  lastContactAt: z.string().nullable(),
  unreachableSince: z.string().nullable(),
  latencyMs: z.number().nullable(),
  createdAt: z.string(),
});
export const LinkList = z.object({ links: z.array(LinkView) });
export const Invite = z.object({ code: z.string(), expiresAt: z.string(), url: z.string() });
export const Unlinked = z.object({ remote: z.enum(['unlinked', 'unreachable']) });
