import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, call, contentUrl, Facets, FolderList, isAbort, Item, ItemList } from '../api.js';
import { bytes, day, folderLabel, KIND_LABELS, KIND_SINGULAR } from '../format.js';
import { Icon } from '../icons.js';
import { onLibraryEvent } from '../live.js';
import { lastLibrary, navigate, onLinkClick } from '../router.js';
import { RemoteItemRow, rememberSites, SiteAnswersNote, siteName } from './sites.js';

const PAGE = 30;
const KINDS = Object.keys(KIND_LABELS);
const SORT_LABELS: Record<string, string> = { relevance: 'Best match', new: 'Newest', title: 'Title', size: 'Largest', popular: 'Most downloaded' };

/** The library's filters, all in the address (so a view can be shared, and Back works). */
interface Filters {
  q: string;
  kind: string;
  tags: string[];
  sort: string;
  folder: string;
  /** Only the items directly in the folder, not below. */
  direct: boolean;
  /** Linked sites' items too (their first page; folders are this site's own, so none then). */
  sites: boolean;
}

function filtersOf(query: URLSearchParams): Filters {
  const kind = query.get('kind') ?? '';
  const sites = query.get('sites') === '1';
  return {
    q: query.get('q') ?? '',
    kind: KINDS.includes(kind) ? kind : '',
    tags: query.getAll('tag').slice(0, 8),
    sort: query.get('sort') ?? '',
    folder: kind && !sites ? (query.get('folder') ?? '').replace(/^\/+|\/+$/g, '') : '',
    direct: !sites && query.get('direct') === '1',
    sites,
  };
}

function addressOf(f: Filters): string {
  const p = new URLSearchParams();
  if (f.q) p.set('q', f.q);
  if (f.kind) p.set('kind', f.kind);
  for (const t of f.tags) p.append('tag', t);
  if (f.sort) p.set('sort', f.sort);
  if (f.kind && f.folder) p.set('folder', f.folder);
  if (f.kind && f.direct) p.set('direct', '1');
  if (f.sites) p.set('sites', '1');
  const s = p.toString();
  return s ? `/?${s}` : '/';
}

/** Whether folders can be asked for: the server may be older than them (a 400 or 404 says so). */
let foldersSupported = true;

function listQuery(f: Filters) {
  if (f.sites) return { q: f.q || undefined, kind: f.kind || undefined, tag: f.tags, sort: f.sort || undefined, limit: PAGE, scope: 'federated' };
  const folderParams = f.kind && foldersSupported ? (f.direct ? { folder: f.folder || '/' } : f.folder ? { under: f.folder } : {}) : {};
  return { q: f.q || undefined, kind: f.kind || undefined, tag: f.tags, sort: f.sort || undefined, limit: PAGE, ...folderParams };
}

async function fetchList(f: Filters, cursor: string | undefined, signal: AbortSignal): Promise<ItemList> {
  try {
    return await call('GET', '/library', { schema: ItemList, query: { ...listQuery(f), cursor }, signal });
  } catch (err) {
    if (err instanceof ApiError && err.status === 400 && f.kind && foldersSupported) {
      foldersSupported = false;
      return call('GET', '/library', { schema: ItemList, query: { ...listQuery(f), cursor }, signal });
    }
    throw err;
  }
}

/** Whether a new item belongs in the list as it is shown (newest first, no words searched). */
function fitsView(item: Item, f: Filters): boolean {
  if (f.q || (f.sort && f.sort !== 'new')) return false;
  if (f.kind && item.kind !== f.kind) return false;
  if (!f.tags.every((t) => item.tags.includes(t))) return false;
  const folder = item.folder;
  if (f.folder && (f.direct ? folder !== f.folder : folder !== f.folder && !folder.startsWith(`${f.folder}/`))) return false;
  if (f.direct && !f.folder && folder) return false;
  return true;
}

export function LibraryView({ query }: { query: URLSearchParams }) {
  const filters = useMemo(() => filtersOf(query), [query.toString()]);
  const key = addressOf(filters);
  lastLibrary.address = key;
  const [text, setText] = useState(filters.q);
  const [items, setItems] = useState<Item[]>([]);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [cursor, setCursor] = useState<string | null>(null);
  const [total, setTotal] = useState<number | null>(null);
  const [loading, setLoading] = useState(true);
  /** The address whose results the list shows (for tests and the benchmark: "rendered for this query"). */
  const [shownFor, setShownFor] = useState('');
  const [more, setMore] = useState(false);
  const [error, setError] = useState('');
  const [facets, setFacets] = useState<Facets | null>(null);
  const [folders, setFolders] = useState<FolderList | null>(null);
  const [folderError, setFolderError] = useState('');
  const [waiting, setWaiting] = useState(0);
  const [siteAnswers, setSiteAnswers] = useState<ItemList['sites']>(undefined);
  const [reload, setReload] = useState(0);
  const filtersRef = useRef(filters);
  filtersRef.current = filters;
  const sentinel = useRef<HTMLDivElement>(null);
  const moreCtrl = useRef<AbortController | null>(null);

  // Typing elsewhere (Back, a tag link) changes the words in the box too.
  useEffect(() => {
    if (document.activeElement?.id !== 'search') setText(filters.q);
  }, [filters.q]);

  // The list's request leaves in the same task as the key press's render (a layout effect), not a
  // frame later as effects do: search as you type waits for the server only.
  useLayoutEffect(() => {
    const ctrl = new AbortController();
    moreCtrl.current?.abort();
    setLoading(true);
    setError('');
    setWaiting(0);
    const f = filters;
    fetchList(f, undefined, ctrl.signal)
      .then((list) => {
        setItems(list.items);
        setSiteAnswers(list.sites);
        if (list.sites) rememberSites(list.sites);
        setCursor(list.nextCursor);
        setTotal(list.total ?? null);
        setFresh(new Set());
        setLoading(false);
        setShownFor(key);
      })
      .catch((err) => {
        if (isAbort(err)) return;
        setError((err as Error).message);
        setItems([]);
        setSiteAnswers(undefined);
        setCursor(null);
        setLoading(false);
      });
    setFolderError('');
    if (f.kind && !f.q && !f.sites && foldersSupported) {
      call('GET', '/library/folders', { schema: FolderList, query: { kind: f.kind, folder: f.folder || undefined }, signal: ctrl.signal })
        .then(setFolders)
        .catch((err) => {
          // A server from before folders takes "folders" for an item id (400 at the kind's root).
          if (err instanceof ApiError && err.status === 400 && !f.folder) foldersSupported = false;
          else if (!isAbort(err)) setFolderError(err instanceof ApiError && err.status === 404 ? 'This folder does not exist (any more).' : (err as Error).message);
          setFolders(null);
        });
    } else setFolders(null);
    return () => ctrl.abort();
  }, [key, reload]);

  // Facet counts follow the words a moment after typing pauses: while keys come, the server's time
  // goes to the results themselves (counting facets over a one-letter prefix is the costlier query).
  const facetKey = JSON.stringify([filters.q, filters.tags, reload]);
  useEffect(() => {
    const ctrl = new AbortController();
    const timer = setTimeout(
      () =>
        call('GET', '/library/facets', { schema: Facets, query: { q: filters.q || undefined, tag: filters.tags }, signal: ctrl.signal })
          .then(setFacets)
          .catch(() => undefined),
      facets ? 300 : 0,
    );
    return () => {
      clearTimeout(timer);
      ctrl.abort();
    };
  }, [facetKey]);

  const loadMore = () => {
    if (!cursor || more || loading) return;
    const ctrl = new AbortController();
    moreCtrl.current = ctrl;
    setMore(true);
    fetchList(filtersRef.current, cursor, ctrl.signal)
      .then((list) => {
        setItems((old) => {
          const seen = new Set(old.map((i) => `${i.site ?? ''}/${i.id}`));
          return [...old, ...list.items.filter((i) => !seen.has(`${i.site ?? ''}/${i.id}`))];
        });
        setCursor(list.nextCursor);
        setMore(false);
      })
      .catch((err) => {
        if (isAbort(err)) return;
        setError((err as Error).message);
        setMore(false);
      });
  };

  // Infinite scroll: the next page loads when the end of the list comes near.
  useEffect(() => {
    const el = sentinel.current;
    if (!el || !cursor) return;
    const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadMore(), { rootMargin: '800px 0px' });
    observer.observe(el);
    return () => observer.disconnect();
  }, [cursor, more, loading]);

  // Live changes: new items that fit the view appear at the top; others are counted.
  useEffect(
    () =>
      onLibraryEvent((e) => {
        if (e.type === 'item.deleted') {
          setItems((old) => old.filter((i) => i.id !== e.id));
          return;
        }
        call('GET', `/library/${e.id}`, { schema: Item })
          .then((item) => {
            if (e.type === 'item.updated') {
              setItems((old) => old.map((i) => (i.id === item.id ? item : i)));
              return;
            }
            if (fitsView(item, filtersRef.current)) {
              setItems((old) => (old.some((i) => i.id === item.id) ? old : [item, ...old]));
              setFresh((old) => new Set(old).add(item.id));
              setTotal((t) => (t === null ? t : t + 1));
            } else setWaiting((n) => n + 1);
          })
          .catch(() => undefined);
      }),
    [],
  );

  const go = (change: Partial<Filters>, replace = false) => navigate(addressOf({ ...filters, ...change }), replace);
  const toggleTag = (tag: string) => go({ tags: filters.tags.includes(tag) ? filters.tags.filter((t) => t !== tag) : [...filters.tags, tag] });
  const sortValue = filters.sort || (filters.q ? 'relevance' : 'new');
  const crumbs = filters.folder ? filters.folder.split('/') : [];
  const heading = filters.q ? `Results for “${filters.q}”` : filters.kind ? KIND_LABELS[filters.kind]! : 'Latest in the library';
  const count = total ?? (filters.kind ? facets?.kinds[filters.kind] : facets?.total);

  return (
    <div class="library">
      <form class="searchbar" role="search" onSubmit={(e) => e.preventDefault()}>
        <label for="search" class="visually-hidden">
          Search the library
        </label>
        <Icon name="search" />
        <input
          id="search"
          type="search"
          placeholder="Search titles, tags, artists…"
          autocomplete="off"
          enterkeyhint="search"
          value={text}
          maxLength={500}
          onInput={(e) => {
            const v = e.currentTarget.value;
            setText(v);
            go({ q: v.trim() ? v : '', sort: v.trim() ? filters.sort : filters.sort === 'relevance' ? '' : filters.sort }, true);
          }}
        />
      </form>

      <div class="filters">
        <div class="chips" role="group" aria-label="Kind">
          <button type="button" class="chip" aria-pressed={!filters.kind} onClick={() => go({ kind: '', folder: '', direct: false })}>
            All{facets ? <span class="count">{facets.total}</span> : null}
          </button>
          {KINDS.map((k) => (
            <button type="button" class="chip" key={k} aria-pressed={filters.kind === k} onClick={() => go({ kind: filters.kind === k ? '' : k, folder: '', direct: false })}>
              <Icon name={k} size={16} />
              {KIND_LABELS[k]}
              {facets ? <span class="count">{facets.kinds[k] ?? 0}</span> : null}
            </button>
          ))}
        </div>
        {facets && facets.tags.length > 0 && (
          <div class="chips tags" role="group" aria-label="Tags">
            {facets.tags.slice(0, 16).map((t) => (
              <button type="button" class="chip small" key={t.tag} aria-pressed={filters.tags.includes(t.tag)} onClick={() => toggleTag(t.tag)}>
                #{t.tag}
                <span class="count">{t.count}</span>
              </button>
            ))}
          </div>
        )}
        <label class="check">
          <input type="checkbox" checked={filters.sites} onChange={(e) => go({ sites: e.currentTarget.checked, folder: '', direct: false })} />
          Include linked sites
        </label>
        <div class="sortline">
          <label for="sort">Sort</label>
          <select id="sort" value={sortValue} onChange={(e) => go({ sort: e.currentTarget.value === (filters.q ? 'relevance' : 'new') ? '' : e.currentTarget.value })}>
            {Object.entries(SORT_LABELS)
              .filter(([s]) => s !== 'relevance' || filters.q)
              .map(([s, label]) => (
                <option value={s} key={s}>
                  {label}
                </option>
              ))}
          </select>
        </div>
      </div>

      {filters.kind && !filters.sites && foldersSupported && (
        <nav class="folders" aria-label="Folders">
          <ol class="crumbs">
            <li>
              <a href={addressOf({ ...filters, folder: '' })} onClick={onLinkClick} aria-current={crumbs.length === 0 ? 'location' : undefined}>
                {KIND_LABELS[filters.kind]}
              </a>
            </li>
            {crumbs.map((name, i) => (
              <li key={i}>
                <a href={addressOf({ ...filters, folder: crumbs.slice(0, i + 1).join('/') })} onClick={onLinkClick} aria-current={i === crumbs.length - 1 ? 'location' : undefined}>
                  {name}
                </a>
              </li>
            ))}
          </ol>
          {folders && folders.folders.length > 0 && (
            <ul class="folder-list">
              {folders.folders.map((d) => (
                <li key={d.folder}>
                  <a href={addressOf({ ...filters, folder: d.folder })} onClick={onLinkClick}>
                    <Icon name="folder" />
                    <span class="name">{d.name}</span>
                    <span class="count" aria-label={`${d.items} items`}>
                      {d.items}
                    </span>
                  </a>
                </li>
              ))}
            </ul>
          )}
          {folderError && <p class="error">{folderError}</p>}
          {(filters.folder || (folders && folders.folders.length > 0)) && (
            <label class="check">
              <input type="checkbox" checked={filters.direct} onChange={(e) => go({ direct: e.currentTarget.checked })} />
              Only the files directly in {filters.folder ? `“${crumbs[crumbs.length - 1]}”` : 'the top level'}
            </label>
          )}
        </nav>
      )}

      <section class="results" aria-labelledby="results-heading" aria-busy={loading}>
        <div class="results-head">
          <h1 id="results-heading">{heading}</h1>
          <p class="muted" aria-live="polite">
            {loading ? 'Loading…' : count !== undefined ? `${count} ${count === 1 ? 'item' : 'items'}${filters.sites ? ' here' : ''}` : ''}
            {filters.folder ? ` in ${folderLabel(filters.folder)}` : ''}
          </p>
        </div>
        {waiting > 0 && (
          <button type="button" class="banner" onClick={() => setReload((n) => n + 1)}>
            {waiting} new {waiting === 1 ? 'item' : 'items'} arrived: show them
          </button>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {!loading && !error && items.length === 0 && (
          <div class="empty">
            <p>{filters.q || filters.tags.length || filters.kind ? 'Nothing matches.' : 'The library is empty so far.'}</p>
            <p>
              <a href="/upload" onClick={onLinkClick}>
                Upload files
              </a>
            </p>
          </div>
        )}
        {filters.sites && siteAnswers && !loading && <SiteAnswersNote sites={siteAnswers} counts={countBySite(items)} />}
        <ul class="items" data-for={shownFor}>
          {items.map((item) =>
            item.site ? (
              <RemoteItemRow item={item} siteLabel={siteAnswers?.find((s) => s.siteId === item.site)?.name ?? siteName(item.site)} key={`${item.site}/${item.id}`} />
            ) : (
              <ItemRow item={item} fresh={fresh.has(item.id)} key={item.id} />
            ),
          )}
        </ul>
        <div ref={sentinel} />
        {cursor && !loading && (
          <button type="button" class="more" onClick={loadMore} disabled={more}>
            {more ? 'Loading…' : 'Show more'}
          </button>
        )}
      </section>
    </div>
  );
}

const countBySite = (items: Item[]) => {
  const counts: Record<string, number> = {};
  for (const i of items) if (i.site) counts[i.site] = (counts[i.site] ?? 0) + 1;
  return counts;
};

function ItemRow({ item, fresh }: { item: Item; fresh: boolean }) {
  const folder = item.folder;
  const artist = typeof item.meta.artist === 'string' ? item.meta.artist : typeof item.meta.author === 'string' ? item.meta.author : '';
  return (
    <li class={fresh ? 'item fresh' : 'item'}>
      <a class="item-link" href={`/item/${item.id}`} onClick={onLinkClick}>
        <span class={`kind-badge k-${item.kind}`}>
          <Icon name={item.kind} />
        </span>
        <span class="item-text">
          <span class="title">{item.title}</span>
          <span class="sub">
            {[artist, KIND_SINGULAR[item.kind], bytes(item.size), day(item.createdAt), folder && folderLabel(folder)].filter(Boolean).join(' · ')}
          </span>
          {item.tags.length > 0 && <span class="tagline">{item.tags.map((t) => `#${t}`).join(' ')}</span>}
        </span>
      </a>
      <a class="icon-button" href={contentUrl(item.id, true)} download={item.filename} aria-label={`Download ${item.title} (${bytes(item.size)})`}>
        <Icon name="download" />
      </a>
    </li>
  );
}
