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

/**
 * This site as people and linked sites see it (GET /api/v1/site, open to all): its id (as items of
 * federated searches name it), its name, and the addresses it advertises — NONDIVY_PUBLIC_URL when
 * set, else each LAN address — the same as the start-up banner, for the web app's QR codes.
 */
export const SiteInfo = z.object({ siteId: z.string(), name: z.string(), urls: z.array(z.string()) });
export type SiteInfo = z.infer<typeof SiteInfo>;
