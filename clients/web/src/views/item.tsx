import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, contentUrl, isAbort, Item } from '../api.js';
import { bytes, dayTime, folderLabel, KIND_LABELS, KIND_SINGULAR, META_LABELS, metaValue } from '../format.js';
import { Icon } from '../icons.js';
import { onLibraryEvent } from '../live.js';
import { lastLibrary, navigate, onLinkClick } from '../router.js';
import { me, say, sessionEnded } from '../state.js';

/** Plain text shown in the page: the first 256 KiB, read with a Range request. */
const TEXT_PREVIEW_BYTES = 256 * 1024;

const folderOf = (item: Item) => item.folder;

export function ItemView({ id }: { id: string }) {
  const [item, setItem] = useState<Item | null>(null);
  const [error, setError] = useState('');
  const [editing, setEditing] = useState(false);
  const user = me.use();

  useEffect(() => {
    const ctrl = new AbortController();
    setItem(null);
    setError('');
    setEditing(false);
    call('GET', `/library/${id}`, { schema: Item, signal: ctrl.signal })
      .then((it) => {
        setItem(it);
        document.title = `${it.title} · Nondivy`;
      })
      .catch((err) => !isAbort(err) && setError((err as Error).message));
    const stop = onLibraryEvent((e) => {
      if (e.id !== id) return;
      if (e.type === 'item.deleted') setError('This item has just been deleted.');
      else if (e.type === 'item.updated') call('GET', `/library/${id}`, { schema: Item }).then(setItem, () => undefined);
    });
    return () => {
      ctrl.abort();
      stop();
      document.title = 'Nondivy';
    };
  }, [id]);

  if (error && !item) {
    return (
      <section class="panel">
        <BackLink />
        <p class="error" role="alert">
          {error}
        </p>
      </section>
    );
  }
  if (!item) return <p class="muted panel" aria-busy="true">Loading…</p>;

  const canEdit = !!user && (user.role === 'admin' || user.username === item.uploadedBy) && !item.site;
  const meta = Object.entries(item.meta).filter(([k]) => k !== 'title' || item.meta.title !== item.title);
  return (
    <article class="item-page">
      <BackLink />
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <header class="item-head">
        <span class={`kind-badge big k-${item.kind}`}>
          <Icon name={item.kind} size={28} />
        </span>
        <div>
          <h1>{item.title}</h1>
          <p class="muted">
            {KIND_SINGULAR[item.kind]} · {bytes(item.size)} · {item.filename}
          </p>
        </div>
      </header>

      <Preview item={item} />

      <div class="actions">
        <a class="button primary" href={contentUrl(item.id, true)} download={item.filename}>
          <Icon name="download" />
          Download <span class="muted-on-primary">({bytes(item.size)})</span>
        </a>
        {(item.contentType === 'application/pdf' || item.contentType === 'text/plain') && (
          <a class="button" href={contentUrl(item.id)} target="_blank" rel="noopener">
            Open in a new tab
          </a>
        )}
        {canEdit && !editing && (
          <button type="button" class="button" onClick={() => setEditing(true)}>
            <Icon name="edit" />
            Edit
          </button>
        )}
      </div>

      {editing && item && <EditForm item={item} onDone={(it) => (it && setItem(it), setEditing(false))} />}

      {item.tags.length > 0 && (
        <ul class="tag-list" aria-label="Tags">
          {item.tags.map((t) => (
            <li key={t}>
              <a href={`/?tag=${encodeURIComponent(t)}`} onClick={onLinkClick}>
                #{t}
              </a>
            </li>
          ))}
        </ul>
      )}
      {item.description && <p class="description">{item.description}</p>}

      <dl class="facts">
        <dt>Kind</dt>
        <dd>
          <a href={`/?kind=${item.kind}`} onClick={onLinkClick}>
            {KIND_LABELS[item.kind]}
          </a>
        </dd>
        <dt>Folder</dt>
        <dd>
          {folderOf(item) ? (
            <a href={`/?kind=${item.kind}&folder=${encodeURIComponent(folderOf(item))}`} onClick={onLinkClick}>
              {folderLabel(folderOf(item))}
            </a>
          ) : (
            folderLabel('')
          )}
        </dd>
        {meta.map(([k, v]) => (
          <>
            <dt key={`k${k}`}>{META_LABELS[k] ?? k}</dt>
            <dd key={`v${k}`}>{metaValue(k, v)}</dd>
          </>
        ))}
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
        <dt>Downloads</dt>
        <dd>{item.downloads}</dd>
        {item.path && (
          <>
            <dt>FTP path</dt>
            <dd class="mono">{item.path}</dd>
          </>
        )}
        <dt>SHA-256</dt>
        <dd class="mono hash">{item.sha256}</dd>
      </dl>

      {canEdit && <DeleteButton item={item} />}
    </article>
  );
}

function BackLink() {
  return (
    <p class="back">
      <a href={lastLibrary.address} onClick={onLinkClick}>
        <Icon name="back" size={18} />
        Library
      </a>
    </p>
  );
}

function Preview({ item }: { item: Item }) {
  const src = contentUrl(item.id);
  if (item.kind === 'audio' || item.contentType.startsWith('audio/')) {
    return (
      <div class="preview">
        <audio controls preload="metadata" src={src} aria-label={`Play ${item.title}`} />
      </div>
    );
  }
  if (item.kind === 'video' || item.contentType.startsWith('video/')) {
    return (
      <div class="preview">
        <video controls preload="metadata" playsInline src={src} aria-label={`Play ${item.title}`} />
      </div>
    );
  }
  if (item.contentType.startsWith('image/') && item.contentType !== 'image/svg+xml') {
    return (
      <div class="preview">
        <img src={src} alt={item.title} decoding="async" />
      </div>
    );
  }
  if (item.contentType === 'text/plain' || (item.contentType.startsWith('text/') && item.size <= TEXT_PREVIEW_BYTES)) return <TextPreview item={item} />;
  return null;
}

function TextPreview({ item }: { item: Item }) {
  const [text, setText] = useState<string | null>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    fetch(contentUrl(item.id), { headers: { range: `bytes=0-${TEXT_PREVIEW_BYTES - 1}` }, signal: ctrl.signal })
      .then((res) => (res.ok ? res.text() : Promise.reject(new Error(String(res.status)))))
      .then(setText)
      .catch(() => setText(null));
    return () => ctrl.abort();
  }, [item.id]);
  if (text === null) return null;
  return (
    <div class="preview text">
      <pre tabIndex={0} aria-label={`Text of ${item.title}`}>
        {text}
        {item.size > TEXT_PREVIEW_BYTES ? '\n…' : ''}
      </pre>
    </div>
  );
}

function EditForm({ item, onDone }: { item: Item; onDone: (item: Item | null) => void }) {
  const [title, setTitle] = useState(item.title);
  const [kind, setKind] = useState<string>(item.kind);
  const [tags, setTags] = useState(item.tags.join(', '));
  const [folder, setFolder] = useState(folderOf(item));
  const [description, setDescription] = useState(item.description);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const supportsFolder = !item.site;

  const save = async (e: Event) => {
    e.preventDefault();
    const change: Record<string, unknown> = {};
    if (title.trim() !== item.title) change.title = title;
    if (kind !== item.kind) change.kind = kind;
    const tagList = tags.split(',').map((t) => t.trim()).filter(Boolean);
    if (tagList.join(',') !== item.tags.join(',')) change.tags = tagList;
    if (description.trim() !== item.description) change.description = description;
    if (supportsFolder && folder.replace(/^\/+|\/+$/g, '') !== folderOf(item)) change.folder = folder;
    if (Object.keys(change).length === 0) return onDone(null);
    setBusy(true);
    setError('');
    try {
      const updated = await call('PATCH', `/library/${item.id}`, { schema: Item, json: change });
      say('Saved.');
      onDone(updated);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) sessionEnded();
      setError(describe(err));
      setBusy(false);
    }
  };

  return (
    <form class="panel form" onSubmit={save} aria-label="Edit this item">
      <h2>Edit</h2>
      <label>
        Title
        <input value={title} required maxLength={300} onInput={(e) => setTitle(e.currentTarget.value)} />
      </label>
      <label>
        Kind
        <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
          {Object.entries(KIND_SINGULAR).map(([k, label]) => (
            <option value={k} key={k}>
              {label}
            </option>
          ))}
        </select>
      </label>
      <label>
        Tags <span class="hint">(comma separated)</span>
        <input value={tags} onInput={(e) => setTags(e.currentTarget.value)} autocomplete="off" />
      </label>
      {supportsFolder && (
        <label>
          Folder <span class="hint">(A/B; empty for the top level)</span>
          <input value={folder} onInput={(e) => setFolder(e.currentTarget.value)} autocomplete="off" />
        </label>
      )}
      <label>
        Description
        <textarea value={description} maxLength={5000} rows={4} onInput={(e) => setDescription(e.currentTarget.value)} />
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="submit" class="button primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" class="button" onClick={() => onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function DeleteButton({ item }: { item: Item }) {
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState('');
  const remove = async () => {
    try {
      await call('DELETE', `/library/${item.id}`);
      say(`Deleted “${item.title}”.`);
      navigate(lastLibrary.address, true);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) sessionEnded();
      setError(describe(err));
    }
  };
  return (
    <div class="danger-zone">
      {!asking ? (
        <button type="button" class="button danger" onClick={() => setAsking(true)}>
          <Icon name="trash" />
          Delete…
        </button>
      ) : (
        <div role="group" aria-label="Confirm deletion">
          <p>Delete “{item.title}” from the library for everyone?</p>
          <div class="actions">
            <button type="button" class="button danger" onClick={remove}>
              Delete for good
            </button>
            <button type="button" class="button" onClick={() => setAsking(false)}>
              Keep it
            </button>
          </div>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** The message of an error for a person: the API's explained refusal, or a generic line. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) {
    const errors = err.problem.errors;
    if (Array.isArray(errors) && errors.length > 0) {
      return `${err.message} ${errors.map((e: { path?: string; message?: string }) => `${e.path ? `${e.path}: ` : ''}${e.message ?? ''}`).join('; ')}`;
    }
    return err.message;
  }
  return 'Something went wrong. Try again.';
}
