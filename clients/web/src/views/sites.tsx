import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, call, isAbort, Item, type ItemList } from '../api.js';
import { bytes, day, dayTime, KIND_LABELS, KIND_SINGULAR } from '../format.js';
import { Icon } from '../icons.js';
import { QrCode } from '../qr.js';
import { lastLibrary, onLinkClick } from '../router.js';
import { copyFrom, createInvite, type InviteT, type LinkT, linkWith, listLinks, loadSite, remoteContentUrl, remoteItemAddress, site, unlink } from '../sites.js';
import { say, sessionEnded } from '../state.js';
import { describe } from './item.js';
import './sites.css';

type SiteAnswers = NonNullable<ItemList['sites']>;

const fail = (setError: (s: string) => void) => (err: unknown) => {
  if (err instanceof ApiError && err.status === 401) sessionEnded();
  setError(describe(err));
};

// ---------------------------------------------------------------------------------------------
// Names of linked sites, learnt from federated searches: an item page opened from a result (or
// reloaded) still says which site the item is on. Kept for the tab's life (sessionStorage).

const NAMES_KEY = 'nondivy.siteNames';

function readNames(): Record<string, string> {
  try {
    const v = JSON.parse(sessionStorage.getItem(NAMES_KEY) ?? '{}') as unknown;
    return v && typeof v === 'object' ? (v as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** Remembers the names of the sites a federated search asked. */
export function rememberSites(sites: SiteAnswers): void {
  const names = readNames();
  for (const s of sites) names[s.siteId] = s.name;
  try {
    sessionStorage.setItem(NAMES_KEY, JSON.stringify(names));
  } catch {
    /* storage full or refused: names are a nicety */
  }
}

/** A linked site's name as last heard, else a neutral phrase. */
export const siteName = (siteId: string) => readNames()[siteId] ?? 'a linked site';

// ---------------------------------------------------------------------------------------------
// Search across linked sites

/**
 * Which linked sites a federated search asked and how each answered: the ones that did not are
 * named with the reason the server gave, so a missing result is not mistaken for "nothing there".
 */
export function SiteAnswersNote({ sites, counts }: { sites: SiteAnswers; counts: Record<string, number> }) {
  if (sites.length === 0) return <p class="muted site-answers">No linked sites: only this library was searched.</p>;
  const ok = sites.filter((s) => s.ok);
  const down = sites.filter((s) => !s.ok);
  return (
    <div class="site-answers">
      {ok.length > 0 && (
        <p class="muted">
          Also searched: {ok.map((s) => `${s.name} (${counts[s.siteId] ?? 0})`).join(', ')}. Only this library’s results continue past the first page.
        </p>
      )}
      {down.map((s) => (
        <p class="notice warn" key={s.siteId} data-site={s.siteId}>
          <strong>{s.name}</strong> is missing from these results: {(s.error ?? 'it did not answer').replace(/\.?$/, '.')}
        </p>
      ))}
    </div>
  );
}

/** A result from a linked site: marked with the site's name, opened on its own page, downloaded through this gateway. */
export function RemoteItemRow({ item, siteLabel }: { item: Item; siteLabel: string }) {
  const siteId = item.site!;
  return (
    <li class="item remote" data-site={siteId}>
      <a class="item-link" href={remoteItemAddress(siteId, item.id)} onClick={onLinkClick}>
        <span class={`kind-badge k-${item.kind}`}>
          <Icon name={item.kind} />
        </span>
        <span class="item-text">
          <span class="title">{item.title}</span>
          <span class="sub">
            <span class="site-badge">{siteLabel}</span> {[KIND_SINGULAR[item.kind], bytes(item.size), day(item.createdAt)].filter(Boolean).join(' · ')}
          </span>
          {item.tags.length > 0 && <span class="tagline">{item.tags.map((t) => `#${t}`).join(' ')}</span>}
        </span>
      </a>
      <a class="icon-button" href={remoteContentUrl(siteId, item.id)} download={item.filename} aria-label={`Download ${item.title} (${bytes(item.size)}) from ${siteLabel}`}>
        <Icon name="download" />
      </a>
    </li>
  );
}

/** A linked site's item: its facts as that site tells them, and a download through this gateway. */
export function RemoteItemView({ siteId, id }: { siteId: string; id: string }) {
  const [item, setItem] = useState<Item | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    const ctrl = new AbortController();
    setItem(null);
    setError('');
    call('GET', `/sites/${encodeURIComponent(siteId)}/library/${encodeURIComponent(id)}`, { schema: Item, signal: ctrl.signal })
      .then((it) => {
        setItem(it);
        document.title = `${it.title} · Nondivy`;
      })
      .catch((err) => {
        if (isAbort(err)) return;
        setError(err instanceof ApiError && err.status === 404 ? `Not found: ${siteName(siteId)} is not linked (any more), or no longer has this item.` : describe(err));
      });
    return () => {
      ctrl.abort();
      document.title = 'Nondivy';
    };
  }, [siteId, id]);

  const back = (
    <p class="back">
      <a href={lastLibrary.address} onClick={onLinkClick}>
        <Icon name="back" size={18} />
        Library
      </a>
    </p>
  );
  if (error) {
    return (
      <section class="panel">
        {back}
        <p class="error" role="alert">
          {error}
        </p>
      </section>
    );
  }
  if (!item) return <p class="muted panel" aria-busy="true">Loading…</p>;
  const name = siteName(siteId);
  return (
    <article class="item-page remote-item">
      {back}
      <header class="item-head">
        <span class={`kind-badge big k-${item.kind}`}>
          <Icon name={item.kind} size={28} />
        </span>
        <div>
          <h1>{item.title}</h1>
          <p class="muted">
            <span class="site-badge">{name}</span> {KIND_SINGULAR[item.kind]} · {bytes(item.size)} · {item.filename}
          </p>
        </div>
      </header>
      <div class="actions">
        <a class="button primary" href={remoteContentUrl(siteId, item.id)} download={item.filename}>
          <Icon name="download" />
          Download <span class="muted-on-primary">({bytes(item.size)})</span>
        </a>
      </div>
      {item.tags.length > 0 && (
        <ul class="tag-list" aria-label="Tags">
          {item.tags.map((t) => (
            <li key={t}>
              <a href={`/?sites=1&tag=${encodeURIComponent(t)}`} onClick={onLinkClick}>
                #{t}
              </a>
            </li>
          ))}
        </ul>
      )}
      {item.description && <p class="description">{item.description}</p>}
      <dl class="facts">
        <dt>Site</dt>
        <dd>{name}</dd>
        <dt>Kind</dt>
        <dd>{KIND_LABELS[item.kind]}</dd>
        <dt>Size</dt>
        <dd>
          {bytes(item.size)} ({item.size.toLocaleString()} bytes)
        </dd>
        <dt>Type</dt>
        <dd>{item.contentType}</dd>
        <dt>Uploaded</dt>
        <dd>
          {dayTime(item.createdAt)} by {item.uploadedBy}
        </dd>
        <dt>SHA-256</dt>
        <dd class="mono hash">{item.sha256}</dd>
      </dl>
    </article>
  );
}

// ---------------------------------------------------------------------------------------------
// This site's address

/**
 * Where people open this site, as text and as a QR code a phone scans from this screen: the
 * addresses the server advertises (NONDIVY_PUBLIC_URL, else each LAN address), else the address
 * this page was opened at. With several, a person picks the one their network reaches.
 */
export function SiteAddress({ heading = 'This site’s address' }: { heading?: string }) {
  const info = site.use();
  const [tried, setTried] = useState(false);
  const [chosen, setChosen] = useState(0);
  useEffect(() => {
    void loadSite().then(() => setTried(true));
  }, []);
  const urls = info?.urls.length ? info.urls : tried ? [location.origin] : [];
  const url = urls[Math.min(chosen, urls.length - 1)];
  return (
    <section class="panel site-address" aria-labelledby="site-address-heading">
      <h2 id="site-address-heading">{heading}</h2>
      {!url ? (
        <p class="muted">Loading…</p>
      ) : (
        <div class="qr-block">
          <QrCode text={url} label="QR code of this site’s address" />
          <div>
            <p>
              Open on a phone or laptop on the same network{info ? <> to reach “{info.name}”</> : null}: scan the code, or type
            </p>
            <p class="address mono">{url}</p>
            {urls.length > 1 && (
              <fieldset class="address-choice">
                <legend>This machine has several addresses: show the code of</legend>
                {urls.map((u, i) => (
                  <label class="check" key={u}>
                    <input type="radio" name="site-address" checked={u === url} onChange={() => setChosen(i)} />
                    <span class="mono">{u}</span>
                  </label>
                ))}
              </fieldset>
            )}
          </div>
        </div>
      )}
    </section>
  );
}

// ---------------------------------------------------------------------------------------------
// Admin: invites and links

/** Admins: invite another site (code, copy, QR), link with another site's code, the links and unlinking. */
export function LinkedSitesAdmin() {
  const [links, setLinks] = useState<LinkT[] | null>(null);
  const [error, setError] = useState('');
  const load = () =>
    listLinks()
      .then((l) => {
        setLinks(l.sort((a, b) => a.name.localeCompare(b.name)));
        setError('');
      })
      .catch(fail(setError));
  useEffect(() => {
    void load();
    // States and last contact change as the server pings its links: follow them while the page is open.
    const timer = setInterval(() => document.visibilityState === 'visible' && void load(), 15_000);
    return () => clearInterval(timer);
  }, []);
  return (
    <section class="panel linked-sites" aria-labelledby="linked-sites-heading">
      <h2 id="linked-sites-heading">Linked sites</h2>
      <p class="muted">
        Linked sites search each other’s libraries, download from each other and send to each other’s devices. Linking needs an admin on both sides: one makes an invite, the other
        pastes its code.
      </p>
      <div class="link-forms">
        <MakeInvite />
        <UseCode onLinked={load} />
      </div>
      <h3>Links</h3>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {!links ? (
        !error && <p class="muted">Loading…</p>
      ) : links.length === 0 ? (
        <p class="muted">No linked sites yet.</p>
      ) : (
        <ul class="link-list">
          {links.map((l) => (
            <LinkRow link={l} onChange={load} key={l.siteId} />
          ))}
        </ul>
      )}
    </section>
  );
}

function MakeInvite() {
  const [invite, setInvite] = useState<InviteT | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [copied, setCopied] = useState('');
  const field = useRef<HTMLTextAreaElement>(null);
  const make = async () => {
    setBusy(true);
    setError('');
    setCopied('');
    try {
      setInvite(await createInvite());
    } catch (err) {
      fail(setError)(err);
    }
    setBusy(false);
  };
  const copy = () => {
    if (!field.current) return;
    const ok = copyFrom(field.current);
    setCopied(ok ? 'Copied.' : 'This browser refused to copy: the code is selected, copy it by hand.');
  };
  return (
    <div class="invite" role="group" aria-labelledby="invite-heading">
      <h3 id="invite-heading">Invite another site</h3>
      <p class="muted">A code for the other site’s admin: it links once, within its time.</p>
      <button type="button" class="button primary" onClick={make} disabled={busy}>
        {invite ? 'Make a new invite' : 'Make an invite'}
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {invite && (
        <div class="invite-code">
          <label for="invite-code">
            Invite code <span class="hint">(valid until {dayTime(invite.expiresAt)}; it names this site as {invite.url})</span>
          </label>
          <textarea ref={field} id="invite-code" class="mono code" readOnly rows={4} value={invite.code} onFocus={(e) => e.currentTarget.select()} />
          <div class="actions">
            <button type="button" class="button" onClick={copy}>
              Copy the code
            </button>
            <span class="copied" role="status">
              {copied}
            </span>
          </div>
          <QrCode text={invite.code} size={240} label="QR code of the invite code" />
        </div>
      )}
    </div>
  );
}

function UseCode({ onLinked }: { onLinked: () => void }) {
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const link = await linkWith(code.trim());
      say(`Linked with “${link.name}”.`);
      setCode('');
      onLinked();
    } catch (err) {
      fail(setError)(err);
    }
    setBusy(false);
  };
  return (
    <form class="form use-code" onSubmit={submit} aria-labelledby="use-code-heading">
      <h3 id="use-code-heading">Link with a code</h3>
      <label>
        Invite code from the other site
        <textarea class="mono code" required rows={4} maxLength={2000} autocomplete="off" autocapitalize="none" spellcheck={false} value={code} onInput={(e) => setCode(e.currentTarget.value)} />
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="button primary" disabled={busy || !code.trim()}>
        {busy ? 'Linking…' : 'Link'}
      </button>
    </form>
  );
}

function LinkRow({ link, onChange }: { link: LinkT; onChange: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const id = `link-${link.siteId}`;
  const remove = async () => {
    setBusy(true);
    setError('');
    try {
      const { remote } = await unlink(link.siteId);
      say(remote === 'unlinked' ? `Unlinked from “${link.name}” on both sides.` : `Unlinked here; “${link.name}” did not answer and still lists this site until its admin unlinks too.`);
      onChange();
    } catch (err) {
      fail(setError)(err);
      setBusy(false);
    }
  };
  const online = link.state === 'online';
  return (
    <li class="link" aria-labelledby={id} data-site={link.siteId}>
      <div class="link-main">
        <span class="link-name" id={id}>
          {link.name}
        </span>
        <span class={online ? 'state ok' : 'state down'}>{online ? 'Online' : 'Unreachable'}</span>
        <span class="muted mono">{link.url}</span>
        <span class="muted">
          {link.lastContactAt ? `Last contact ${dayTime(link.lastContactAt)}` : 'No contact yet'}
          {online && link.latencyMs !== null ? ` · ${Math.round(link.latencyMs)} ms` : ''}
          {!online && link.unreachableSince ? ` · unreachable since ${dayTime(link.unreachableSince)}` : ''}
          {` · linked ${day(link.createdAt)}`}
        </span>
        <button type="button" class="button small danger" aria-expanded={confirming} onClick={() => setConfirming(!confirming)}>
          Unlink<span class="visually-hidden"> {link.name}</span>
        </button>
      </div>
      {confirming && (
        <div class="confirm" role="group" aria-label={`Confirm unlinking ${link.name}`}>
          <p>
            Unlink “{link.name}”? Neither site will search or download from the other any more, and transfers between them stop. Linking again needs a new invite.
          </p>
          <button type="button" class="button danger" onClick={remove} disabled={busy}>
            Unlink {link.name}
          </button>
          <button type="button" class="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}
