import { ItemList, ITEM_KINDS, LIST_LIMIT_MAX, SORTS } from '@nondivy/contracts';
import { choiceOption, intOption } from '../args.js';
import { defineCommand } from '../command.js';
import { formatBytes, printable, table } from '../format.js';

export const searchCommand = defineCommand({
  name: 'search',
  summary: 'Search the library (no words: browse, newest first).',
  usage: `Usage: nondivy search [WORDS...] [--kind K] [--tag T]... [--sort S] [--limit N] [--all]

  --kind K     only this kind (${ITEM_KINDS.join(', ')})
  --tag T      only items with this tag (repeatable: all of them)
  --sort S     ${SORTS.join(', ')} (default: relevance with words, new without)
  --limit N    at most N items (1-${LIST_LIMIT_MAX}, default 50)
  --all        include the linked sites (federated search); the SITE column shows their names`,
  examples: [
    'nondivy search dune --kind ebook',
    'nondivy search --sort popular --limit 10 # browse the most downloaded',
    'nondivy search river --all # here and on every linked site; then: nondivy get ID@SITE',
  ],
  options: {
    kind: { type: 'string' },
    tag: { type: 'string', multiple: true },
    sort: { type: 'string' },
    limit: { type: 'string' },
    all: { type: 'boolean' },
  },
  async run({ values, positionals }, ctx) {
    const kind = choiceOption('kind', values.kind, ITEM_KINDS);
    const sort = choiceOption('sort', values.sort, SORTS);
    const limit = intOption('limit', values.limit, 50, 1, LIST_LIMIT_MAX);
    const q = positionals.join(' ').trim();
    const api = await ctx.api({ login: 'optional' });
    const list = await api.call(ItemList, 'GET', '/library', {
      query: { q: q || undefined, kind, tag: values.tag, sort, limit, scope: values.all ? 'federated' : undefined },
    });
    if (ctx.json) {
      ctx.out.data(list);
      return;
    }
    for (const s of list.sites ?? []) if (!s.ok) ctx.out.warn(`${printable(s.name)} did not answer${s.error ? ` (${printable(s.error)})` : ''}: its items are missing`);
    if (list.items.length === 0) {
      ctx.out.line(q ? `nothing matches "${q}"` : 'the library is empty');
      return;
    }
    // Items carry their site's id; people know sites by name (the ones `get ID@SITE` takes).
    const siteNames = new Map((list.sites ?? []).map((s) => [s.siteId, s.name]));
    const siteOf = (site: string) => siteNames.get(site) ?? site;
    const withSite = list.items.some((i) => i.site);
    const headers = withSite ? ['ID', 'KIND', 'SIZE', 'SITE', 'TITLE'] : ['ID', 'KIND', 'SIZE', 'TITLE'];
    const rows = list.items.map((i) => (withSite ? [i.id, i.kind, formatBytes(i.size), i.site ? siteOf(i.site) : '', i.title] : [i.id, i.kind, formatBytes(i.size), i.title]));
    ctx.out.line(table(headers, rows));
    if (withSite) ctx.out.note('(an item of another site: nondivy get ID@SITE)');
    const total = list.total ?? (list.nextCursor ? undefined : list.items.length);
    if (total !== undefined && total > list.items.length) ctx.out.line(`(${list.items.length} of ${total}: raise --limit to see more)`);
    else if (total === undefined && list.nextCursor) ctx.out.line(`(first ${list.items.length}: raise --limit to see more)`);
  },
});
