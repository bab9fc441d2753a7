import { ItemList } from '@nondivy/contracts';
import { ApiError, type Api } from './api.js';
import { CliError } from './errors.js';
import { printable } from './format.js';
import { LinkList } from './schemas.js';

/** A linked site as a user names it. */
export interface SiteRef {
  siteId: string;
  name: string;
}

/**
 * The linked sites this caller can see. Admins read the links themselves (`GET /federation/links`:
 * no other site is asked); everyone else — members and guests, to whom that list is forbidden —
 * learns them from the `sites` of a one-item federated search, which names every linked site
 * asked, answering or not.
 */
export async function linkedSites(api: Api): Promise<SiteRef[]> {
  if (api.token) {
    try {
      const { links } = await api.call(LinkList, 'GET', '/federation/links');
      return links.map((l) => ({ siteId: l.siteId, name: l.name }));
    } catch (err) {
      if (!(err instanceof ApiError) || (err.status !== 403 && err.status !== 401)) throw err;
    }
  }
  const { sites } = await api.call(ItemList, 'GET', '/library', { query: { scope: 'federated', limit: 1 } });
  return (sites ?? []).map((s) => ({ siteId: s.siteId, name: s.name }));
}

/**
 * The linked site a user means by SITE: its id, else its exact name, else its name ignoring case —
 * each only when it names one site.
 */
export async function resolveSite(api: Api, site: string): Promise<SiteRef> {
  const sites = await linkedSites(api);
  const byId = sites.find((s) => s.siteId === site);
  if (byId) return byId;
  for (const same of [(s: SiteRef) => s.name === site, (s: SiteRef) => s.name.toLowerCase() === site.toLowerCase()]) {
    const named = sites.filter(same);
    if (named.length === 1) return named[0]!;
    if (named.length > 1) throw new CliError(`several linked sites are named ${printable(site)}: use the site id (${named.map((s) => s.siteId).join(', ')})`);
  }
  const known = sites.length ? `the linked sites are ${sites.map((s) => `${printable(s.name)} (${s.siteId})`).join(', ')}` : 'this site is linked to no other';
  throw new CliError(`no linked site ${printable(site)} at ${api.server}: ${known}`);
}
