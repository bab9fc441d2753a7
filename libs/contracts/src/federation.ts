import { z } from 'zod';

/** A link with another site, as its admins see it (never its key material). */
export const Link = z.object({
  siteId: z.string(),
  name: z.string(),
  url: z.string(),
  state: z.enum(['online', 'unreachable']),
  lastContactAt: z.string().nullable(),
  unreachableSince: z.string().nullable(),
  latencyMs: z.number().nullable(),
  createdAt: z.string(),
});
export type Link = z.infer<typeof Link>;

export const Invite = z.object({ code: z.string(), expiresAt: z.string(), url: z.string() });
export const LinkList = z.object({ links: z.array(Link) });
export const Unlinked = z.object({ remote: z.enum(['unlinked', 'unreachable']) });
