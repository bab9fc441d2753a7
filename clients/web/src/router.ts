import type { TargetedMouseEvent } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** The app's addresses: / (the library, its filters in the query), /item/ID, /sites/SITE/item/ID, /upload, /login, /account, /admin. */
export type Route =
  | { name: 'library'; query: URLSearchParams }
  | { name: 'item'; id: string }
  | { name: 'remote'; siteId: string; id: string }
  | { name: 'upload' }
  | { name: 'nearby' }
  | { name: 'login'; next: string }
  | { name: 'account' }
  | { name: 'admin' }
  | { name: 'missing' };

export function parseRoute(loc: { pathname: string; search: string }): Route {
  const path = loc.pathname.replace(/\/+$/, '') || '/';
  const query = new URLSearchParams(loc.search);
  if (path === '/') return { name: 'library', query };
  const item = /^\/item\/([A-Za-z0-9_-]{22})$/.exec(path);
  if (item) return { name: 'item', id: item[1]! };
  const remote = /^\/sites\/([A-Za-z0-9_-]{8,40})\/item\/([A-Za-z0-9_-]{22})$/.exec(path);
  if (remote) return { name: 'remote', siteId: remote[1]!, id: remote[2]! };
  if (path === '/upload') return { name: 'upload' };
  if (path === '/nearby') return { name: 'nearby' };
  if (path === '/login') {
    const next = query.get('next') ?? '/';
    return { name: 'login', next: next.startsWith('/') && !next.startsWith('//') ? next : '/' };
  }
  if (path === '/account') return { name: 'account' };
  if (path === '/admin') return { name: 'admin' };
  return { name: 'missing' };
}

/** The library's address as last shown (its filters), for the item page's way back. */
export const lastLibrary = { address: '/' };

const listeners = new Set<() => void>();
const notify = () => {
  for (const l of listeners) l();
};
addEventListener('popstate', notify);

/** Goes to an address of the app without reloading (replace: without a new history entry). */
export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  notify();
  if (!replace) scrollTo(0, 0);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location));
  useEffect(() => {
    const l = () => setRoute(parseRoute(location));
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return route;
}

/** A link within the app: an ordinary <a href> (open in a new tab works), followed without a reload on a plain click. */
export function onLinkClick(e: TargetedMouseEvent<HTMLAnchorElement>): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.currentTarget;
  if (a.target || a.hasAttribute('download') || a.origin !== location.origin || a.pathname.startsWith('/api/')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}
