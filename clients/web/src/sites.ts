// Linked sites and this site's own address, as the web app uses them: the federation API's calls
// with their answers parsed by the contracts' schemas (browser-safe module, by file).
import { Invite, Link, LinkList, SiteInfo, Unlinked } from '../../../libs/contracts/src/federation.js';
import type { z } from 'zod';
import { API, call } from './api.js';
import { Store } from './state.js';

export type LinkT = Link;
export type InviteT = z.infer<typeof Invite>;

/** This site (id, name, advertised addresses): asked once per page load, shared by every view that shows the address. */
export const site = new Store<SiteInfo | null>(null);
let asking: Promise<SiteInfo | null> | null = null;

/** Loads `site` (once; again after a failure). A server from before GET /site leaves it null. */
export function loadSite(): Promise<SiteInfo | null> {
  asking ??= call('GET', '/site', { schema: SiteInfo }).then(
    (info) => {
      site.set(info);
      return info;
    },
    () => {
      asking = null;
      return null;
    },
  );
  return asking;
}

export const createInvite = () => call('POST', '/federation/invites', { schema: Invite });
export const linkWith = (code: string) => call('POST', '/federation/links', { schema: Link, json: { code } });
export const listLinks = async () => (await call('GET', '/federation/links', { schema: LinkList })).links;
export const unlink = (siteId: string) => call('DELETE', `/federation/links/${encodeURIComponent(siteId)}`, { schema: Unlinked });

/** The app's own address of a linked site's item. */
export const remoteItemAddress = (siteId: string, id: string) => `/sites/${encodeURIComponent(siteId)}/item/${encodeURIComponent(id)}`;

/**
 * The bytes of a linked site's item, through this gateway: a plain link for the browser's download
 * manager (the gateway streams it, always as an attachment; Range resumes work).
 */
export const remoteContentUrl = (siteId: string, id: string) => `${API}/sites/${encodeURIComponent(siteId)}/library/${encodeURIComponent(id)}/content`;

/**
 * Puts `text` on the clipboard on a page that is not a secure context (plain http at a LAN address,
 * where `navigator.clipboard` does not exist): a selected read-only textarea and execCommand('copy').
 * The field stays selected, so a person can still copy by hand when the browser refuses.
 */
export function copyFrom(field: HTMLTextAreaElement | HTMLInputElement): boolean {
  field.focus();
  field.select();
  field.setSelectionRange(0, field.value.length);
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  }
}
