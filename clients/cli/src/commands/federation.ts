import { defineCommand } from '../command.js';
import { UsageError } from '../errors.js';
import { formatAgo, printable, table } from '../format.js';
import { Invite, LinkList, LinkView, Unlinked } from '../schemas.js';

/** `nondivy link` (no code: make an invite; with a code: use another site's invite). Admins only. */
export const linkCommand = defineCommand({
  name: 'link',
  summary: 'Link this site with another one (admins): make an invite, or use one.',
  usage: `Usage: nondivy link            print an invite code for another site's admin (valid once, for a while)
       nondivy link CODE       link this site to the site that made CODE`,
  examples: [
    'nondivy link # on the first site: prints an invite code',
    'nondivy link ndv1.… # on the other site: links the two',
  ],
  options: {},
  async run({ positionals }, ctx) {
    if (positionals.length > 1) throw new UsageError('link takes at most one invite code');
    const api = await ctx.api({ login: 'required' });
    if (positionals.length === 0) {
      const invite = await api.call(Invite, 'POST', '/federation/invites');
      if (ctx.json) return ctx.out.data(invite);
      ctx.out.line(invite.code);
      ctx.out.note(`give this code to the other site's admin, who runs: nondivy link CODE (valid until ${invite.expiresAt}, once)`);
      return;
    }
    const link = await api.call(LinkView, 'POST', '/federation/links', { json: { code: positionals[0] } });
    if (ctx.json) return ctx.out.data(link);
    ctx.out.line(`linked with ${printable(link.name)} (${link.siteId}) at ${link.url}`);
  },
});

export const linksCommand = defineCommand({
  name: 'links',
  summary: 'List the linked sites and their state (admins).',
  usage: 'Usage: nondivy links',
  examples: [
    'nondivy links # each linked site, online or unreachable since when',
  ],
  options: {},
  async run(_args, ctx) {
    const api = await ctx.api({ login: 'required' });
    const list = await api.call(LinkList, 'GET', '/federation/links');
    if (ctx.json) return ctx.out.data(list);
    if (!list.links.length) return ctx.out.line('no linked site');
    const rows = list.links.map((l) => [
      printable(l.name),
      l.siteId,
      l.state === 'online' ? 'online' : `unreachable${l.unreachableSince ? ` since ${formatAgo(l.unreachableSince)}` : ''}`,
      l.lastContactAt ? formatAgo(l.lastContactAt) : '-',
      l.latencyMs === null ? '-' : `${l.latencyMs} ms`,
      l.url,
    ]);
    ctx.out.line(table(['NAME', 'SITE', 'STATE', 'LAST CONTACT', 'LATENCY', 'URL'], rows));
  },
});

export const unlinkCommand = defineCommand({
  name: 'unlink',
  summary: 'Unlink a site (admins): on both sides, or on this one if the other is gone.',
  usage: 'Usage: nondivy unlink SITE   (site id or name, as `nondivy links` shows)',
  examples: [
    'nondivy unlink Riverside # by name, as nondivy links shows it (or by site id)',
  ],
  options: {},
  async run({ positionals }, ctx) {
    if (positionals.length !== 1) throw new UsageError('unlink takes one site id or name');
    const api = await ctx.api({ login: 'required' });
    const { links } = await api.call(LinkList, 'GET', '/federation/links');
    const matches = links.filter((l) => l.siteId === positionals[0] || l.name === positionals[0]);
    if (matches.length !== 1) throw new UsageError(matches.length ? `several linked sites are named ${positionals[0]}: use the site id` : `no linked site ${positionals[0]}`);
    const site = matches[0]!;
    const res = await api.call(Unlinked, 'DELETE', `/federation/links/${site.siteId}`);
    if (ctx.json) return ctx.out.data({ siteId: site.siteId, ...res });
    ctx.out.line(res.remote === 'unlinked' ? `unlinked ${printable(site.name)} on both sides` : `unlinked ${printable(site.name)} here; it did not answer, so it may still list this site`);
  },
});
