import { useEffect, useRef, useState } from 'preact/hooks';
import { bytes } from '../format.js';
import { Icon } from '../icons.js';
import { accept, cancel, devices, goOffline, goOnline, isFinal, locals, offer, presence, reject, remote, rename, savedName, siteName, transfers, type Device, type Local, type Transfer } from '../nearby.js';
import { QrCode } from '../qr.js';
import { onLinkClick } from '../router.js';
import { me, say } from '../state.js';
import { filesOfDrop } from '../uploads.js';

/**
 * "Nearby": this tab as a device. Who else is online (browsers and CLIs), send files, a folder or
 * a text to one of them, answer offers, and follow each transfer to its end. The site's address as
 * text and QR code, so a phone joins by scanning.
 */
export function NearbyView() {
  const user = me.use();
  const p = presence.use();
  useEffect(() => {
    if (user === undefined) return;
    void goOnline();
    return () => void goOffline();
  }, [user === undefined, user?.username]);

  return (
    <section class="panel nearby">
      <h1>Nearby</h1>
      {p.state === 'need-login' ? (
        <div class="notice">
          <p>Sharing with nearby devices needs an account on this server. {p.detail && <span class="muted">({p.detail})</span>}</p>
          <p>
            <a class="button primary" href="/login?next=%2Fnearby" onClick={onLinkClick}>
              Log in to share
            </a>
          </p>
        </div>
      ) : p.state === 'failed' ? (
        <p class="error" role="alert">
          This tab could not join: {p.detail}{' '}
          <button type="button" class="button small" onClick={() => void goOnline()}>
            Try again
          </button>
        </p>
      ) : p.state === 'online' ? (
        <>
          <NameForm name={p.device.name} />
          <DeviceList />
          <TransferList myId={p.device.id} />
        </>
      ) : (
        <p class="muted">Joining…</p>
      )}
      <SiteAddress />
    </section>
  );
}

function NameForm({ name }: { name: string }) {
  const [value, setValue] = useState(name);
  const [editing, setEditing] = useState(false);
  if (!editing) {
    return (
      <p class="me-line">
        Others see this tab as <strong class="me-name">{name}</strong>{' '}
        <button type="button" class="button small" onClick={() => setEditing(true)}>
          <Icon name="edit" size={16} /> Rename
        </button>
      </p>
    );
  }
  return (
    <form
      class="form rename"
      onSubmit={(e) => {
        e.preventDefault();
        const next = value.trim();
        setEditing(false);
        if (next && next !== name) void rename(next);
      }}
    >
      <label>
        This device's name
        <input value={value} maxLength={64} required onInput={(e) => setValue(e.currentTarget.value)} autocomplete="off" />
      </label>
      <div class="actions">
        <button type="submit" class="button primary">
          Save
        </button>
        <button type="button" class="button" onClick={() => setEditing(false)}>
          Keep {savedName() === name ? 'it' : name}
        </button>
      </div>
    </form>
  );
}

function DeviceList() {
  const list = devices.use();
  const far = remote.use();
  const bySite = far.sites.map((site) => ({ site, devices: far.devices.filter((d) => d.site === site.siteId) }));
  return (
    <>
      <section aria-labelledby="devices-heading">
        <h2 id="devices-heading">Devices online</h2>
        {list.length === 0 ? (
          <p class="muted empty-devices">No other device is online. Open this address on another device (scan the code below), or run "nondivy receive".</p>
        ) : (
          <ul class="devices">
            {list.map((d) => (
              <DeviceCard d={d} key={d.id} />
            ))}
          </ul>
        )}
      </section>
      {bySite.length > 0 && (
        <section aria-labelledby="far-heading">
          <h2 id="far-heading">On linked sites</h2>
          {bySite.map(({ site, devices: found }) => (
            <div class="linked-site" key={site.siteId}>
              <h3>{site.name}</h3>
              {!site.ok ? (
                <p class="muted">{site.name} did not answer{site.error ? `: ${site.error}` : ''}.</p>
              ) : found.length === 0 ? (
                <p class="muted">No device is online there.</p>
              ) : (
                <ul class="devices">
                  {found.map((d) => (
                    <DeviceCard d={d} key={`${d.id}@${d.site}`} />
                  ))}
                </ul>
              )}
            </div>
          ))}
        </section>
      )}
    </>
  );
}

function DeviceCard({ d }: { d: Device }) {
  const [over, setOver] = useState(false);
  const [texting, setTexting] = useState(false);
  const [text, setText] = useState('');
  const [preparing, setPreparing] = useState<{ done: number; total: number; stop: AbortController } | null>(null);
  const filesInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const far = d.site !== undefined;
  const label = far ? `${d.name} (${siteName(d.site!)})` : d.name;
  const send = (files: File[], message?: string) => {
    if (!files.length && !message) return;
    if (preparing) return say(`Still checksumming the last files for ${label}`);
    const stop = new AbortController();
    if (far) setPreparing({ done: 0, total: files.reduce((s, f) => s + f.size, 0), stop });
    offer(d, files, message, { signal: stop.signal, onDigest: (done, total) => setPreparing({ done, total, stop }) })
      .then(
        () => say(message && !files.length ? `Text sent to ${label}` : `Offered ${files.length} file${files.length === 1 ? '' : 's'} to ${label}`),
        (err: Error) => say(stop.signal.aborted ? 'Not sent' : err.message),
      )
      .finally(() => setPreparing(null));
  };
  const picked = (input: HTMLInputElement) => {
    const files = Array.from(input.files ?? []);
    input.value = '';
    send(files);
  };
  return (
    <li
      class={over ? 'device over' : 'device'}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        if (e.dataTransfer) void filesOfDrop(e.dataTransfer.items).then((f) => send(f.map((x) => x.file)));
      }}
    >
      <div class="device-head">
        <span class="device-name">{d.name}</span>
        {d.owner && <span class="muted"> · {d.owner}</span>}
        {far && <span class="muted"> · on {siteName(d.site!)}</span>}
      </div>
      <div class="actions">
        <button type="button" class="button primary" disabled={preparing !== null} onClick={() => filesInput.current?.click()}>
          Send files to {label}
        </button>
        <button type="button" class="button" disabled={preparing !== null} onClick={() => folderInput.current?.click()}>
          Send a folder
        </button>
        {!far && (
          <button type="button" class="button" aria-expanded={texting} onClick={() => setTexting(!texting)}>
            Send a text
          </button>
        )}
      </div>
      {preparing && (
        <div class="preparing" role="status">
          <p>
            <progress max={preparing.total || 1} value={preparing.done} aria-label={`Checksumming the files for ${label}`} /> Checksumming for {siteName(d.site!)}: {bytes(preparing.done)} of {bytes(preparing.total)}
          </p>
          <button type="button" class="button small" onClick={() => preparing.stop.abort()}>
            Stop
          </button>
        </div>
      )}
      {far && !preparing && <p class="muted small-note">Files to a linked site are checksummed here first; texts stay on this site.</p>}
      <input ref={filesInput} class="pick-files" type="file" multiple hidden aria-label={`Files for ${label}`} onChange={(e) => picked(e.currentTarget)} />
      <input ref={folderInput} type="file" multiple hidden aria-label={`A folder for ${label}`} {...({ webkitdirectory: true } as object)} onChange={(e) => picked(e.currentTarget)} />
      {texting && !far && (
        <form
          class="form text-form"
          onSubmit={(e) => {
            e.preventDefault();
            send([], text);
            setText('');
            setTexting(false);
          }}
        >
          <label>
            Text or link for {d.name}
            <textarea value={text} maxLength={4000} rows={3} required onInput={(e) => setText(e.currentTarget.value)} />
          </label>
          <button type="submit" class="button primary">
            Send text
          </button>
        </form>
      )}
    </li>
  );
}

const STATE_WORDS: Record<string, string> = {
  offered: 'Waiting for an answer',
  accepted: 'Accepted',
  rejected: 'Rejected',
  cancelled: 'Cancelled',
  expired: 'Expired',
  completed: 'Completed',
  failed: 'Failed',
};

function TransferList({ myId }: { myId: string }) {
  const list = transfers.use();
  const l = locals.use();
  if (list.length === 0) return null;
  return (
    <section aria-labelledby="transfers-heading">
      <h2 id="transfers-heading">Transfers</h2>
      <ul class="transfers">
        {list.map((t) => (
          <TransferRow t={t} l={l[t.id] ?? {}} out={t.from.device === myId} key={t.id} />
        ))}
      </ul>
    </section>
  );
}

function TransferRow({ t, l, out }: { t: Transfer; l: Local; out: boolean }) {
  const total = t.files.reduce((s, f) => s + f.size, 0);
  const done = out && l.sent ? t.files.slice(0, l.sent.n).reduce((s, f) => s + f.size, 0) + l.sent.bytes : (t.progress?.bytes ?? 0);
  const shown = t.state === 'completed' ? total : Math.min(done, total);
  const act = (f: () => Promise<unknown>) => () => void f().catch((err: Error) => say(err.message));
  const text = l.text ?? t.text ?? undefined;
  return (
    <li class={`transfer state-${t.state}`} data-transfer={t.id}>
      <p class="transfer-head">
        <strong>{out ? `To ${t.to.name}` : `From ${t.from.name}`}</strong>
        {(out ? t.to.site : t.from.site) && <span class="muted"> on {siteName((out ? t.to.site : t.from.site)!)}</span>}
        {!out && t.from.owner && <span class="muted"> ({t.from.owner})</span>}
        <span class="transfer-state"> · {STATE_WORDS[t.state] ?? t.state}</span>
      </p>
      {text !== undefined && <TextMessage text={text} />}
      {t.files.length > 0 && (
        <ul class="transfer-files">
          {t.files.map((f) => (
            <li key={f.n}>
              <span class="file-name">{f.name}</span> <span class="muted">{bytes(f.size)}</span>
            </li>
          ))}
        </ul>
      )}
      {t.files.length > 0 && t.state === 'accepted' && (
        <p>
          <progress max={total || 1} value={total ? shown : 0} aria-label={`Progress of the transfer ${out ? 'to' : 'from'} ${out ? t.to.name : t.from.name}`} /> {bytes(shown)} of {bytes(total)}
        </p>
      )}
      {t.state === 'completed' && t.files.length > 0 && <p class="ok">{out ? 'Delivered' : 'Delivered to this browser\'s downloads'} ({bytes(total)}).</p>}
      {t.reason && isFinal(t) && t.state !== 'completed' && <p class="why">Why: {t.reason}</p>}
      {l.error && !isFinal(t) && <p class="error">{l.error}</p>}
      <div class="actions">
        {!out && t.state === 'offered' && (
          <>
            <button type="button" class="button primary" onClick={act(() => accept(t))}>
              Accept
            </button>
            <button type="button" class="button" onClick={act(() => reject(t))}>
              Reject
            </button>
          </>
        )}
        {(t.state === 'accepted' || (out && t.state === 'offered')) && (
          <button type="button" class="button danger" onClick={act(() => cancel(t, out ? 'sender' : 'receiver'))}>
            Cancel
          </button>
        )}
      </div>
    </li>
  );
}

/** A received (or sent) text with a copy button that works on plain http (no async clipboard API there). */
function TextMessage({ text }: { text: string }) {
  const area = useRef<HTMLTextAreaElement>(null);
  const copy = () => {
    const el = area.current;
    if (!el) return;
    el.focus();
    el.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    say(ok ? 'Copied' : 'Select the text and copy it');
  };
  const link = /^https?:\/\/\S+$/.test(text.trim()) ? text.trim() : null;
  return (
    <div class="text-message">
      <textarea ref={area} readOnly value={text} rows={Math.min(6, text.split('\n').length + 1)} aria-label="Text message" />
      <div class="actions">
        <button type="button" class="button small" onClick={copy}>
          Copy
        </button>
        {link && (
          <a class="button small" href={link} target="_blank" rel="noopener noreferrer">
            Open link
          </a>
        )}
      </div>
    </div>
  );
}

function SiteAddress() {
  const address = location.origin;
  return (
    <section class="site-address" aria-labelledby="address-heading">
      <h2 id="address-heading">Join from another device</h2>
      <p>
        Open <strong class="mono">{address}/nearby</strong> on a phone or laptop on this network, or scan:
      </p>
      <QrCode text={`${address}/nearby`} size={180} label="This site's Nearby address" />
    </section>
  );
}
