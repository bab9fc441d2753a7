import { Device, Transfer } from '@nondivy/contracts';
export { Invite, Link as LinkView, LinkList, Unlinked } from '@nondivy/contracts';
import { z } from 'zod';

/** GET /devices. */
export const DeviceList = z.object({ devices: z.array(Device) });
/** GET /transfers?device=…: one page; `nextCursor` continues (absent from servers that list all at once). */
export const TransferList = z.object({ transfers: z.array(Transfer), nextCursor: z.string().nullish() });

