import { useRef, useState } from 'preact/hooks';
import { bytes, duration, KIND_SINGULAR } from '../format.js';
import { Icon } from '../icons.js';
import { onLinkClick } from '../router.js';
import { me } from '../state.js';
import { cancel, clearFinished, enqueue, filesOfDrop, isActive, retry, uploads, type Upload, type UploadFields } from '../uploads.js';

export function UploadView() {
  const user = me.use();
  const list = uploads.use();
  const [fields, setFields] = useState<UploadFields>({ kind: '', tags: '', folder: '', title: '' });
  const [over, setOver] = useState(false);
  const filesInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const set = (k: keyof UploadFields) => (e: { currentTarget: HTMLInputElement | HTMLSelectElement }) => setFields({ ...fields, [k]: e.currentTarget.value });

  const pick = (input: HTMLInputElement | null) => {
    if (!input?.files || input.files.length === 0) return;
    enqueue(
      Array.from(input.files).map((file) => ({ file, path: file.webkitRelativePath ?? '' })),
      fields,
    );
    input.value = '';
  };

  const done = list.filter((u) => u.state === 'done').length;
  const active = list.filter(isActive).length;

  return (
    <section class="panel upload">
      <h1>Upload</h1>
      {user === null && (
        <p class="notice">
          You are not logged in: uploads work only if this server lets guests upload.{' '}
          <a href="/login?next=%2Fupload" onClick={onLinkClick}>
            Log in
          </a>
        </p>
      )}

      <fieldset class="form details">
        <legend>Details for the files you add next</legend>
        <label>
          Kind
          <select value={fields.kind} onChange={set('kind')}>
            <option value="">Guess from each file</option>
            {Object.entries(KIND_SINGULAR).map(([k, label]) => (
              <option value={k} key={k}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Tags <span class="hint">(comma separated)</span>
          <input value={fields.tags} onInput={set('tags')} autocomplete="off" />
        </label>
        <label>
          Folder <span class="hint">(A/B; a picked folder goes inside it)</span>
          <input value={fields.folder} onInput={set('folder')} autocomplete="off" />
        </label>
        <label>
          Title <span class="hint">(when you add a single file; else each file's name)</span>
          <input value={fields.title} onInput={set('title')} maxLength={300} autocomplete="off" />
        </label>
      </fieldset>

      <div
        class={over ? 'dropzone over' : 'dropzone'}
        onDragOver={(e) => {
          e.preventDefault();
          if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          if (!e.dataTransfer) return;
          const snapshot = { ...fields };
          void filesOfDrop(e.dataTransfer.items).then((files) => files.length > 0 && enqueue(files, snapshot));
        }}
      >
        <Icon name="upload" size={32} />
        <p>Drop files or folders here, or</p>
        <div class="actions center">
          <button type="button" class="button primary" onClick={() => filesInput.current?.click()}>
            Choose files
          </button>
          <button type="button" class="button" onClick={() => folderInput.current?.click()}>
            Choose a folder
          </button>
        </div>
        <input ref={filesInput} id="pick-files" type="file" multiple hidden onChange={(e) => pick(e.currentTarget)} />
        {/* webkitdirectory: every browser's folder picker (the files come with webkitRelativePath). */}
        <input ref={folderInput} id="pick-folder" type="file" multiple hidden {...({ webkitdirectory: true } as object)} onChange={(e) => pick(e.currentTarget)} />
      </div>

      {list.length > 0 && (
        <section class="queue" aria-labelledby="queue-heading">
          <div class="queue-head">
            <h2 id="queue-heading">
              Queue <span class="muted">({done} of {list.length} done{active ? `, ${active} to go` : ''})</span>
            </h2>
            {list.length > active && (
              <button type="button" class="button small" onClick={clearFinished}>
                Clear finished
              </button>
            )}
          </div>
          <ul class="uploads">
            {list.map((u) => (
              <UploadRow u={u} key={u.key} />
            ))}
          </ul>
        </section>
      )}
    </section>
  );
}

function UploadRow({ u }: { u: Upload }) {
  const name = u.path || u.file.name;
  const pct = u.file.size > 0 ? Math.floor((u.loaded / u.file.size) * 100) : u.state === 'done' ? 100 : 0;
  const left = u.speed > 0 ? (u.file.size - u.loaded) / u.speed : NaN;
  let status: string;
  switch (u.state) {
    case 'queued':
      status = 'Waiting';
      break;
    case 'uploading':
      // Interrupted, the bar shows what the server confirmed (unknown until it is asked again).
      if (u.note) status = u.loaded > 0 ? `${pct}% · ${u.note}` : u.note;
      else {
        status = `${pct}%` + (u.speed > 0 ? ` · ${bytes(u.speed)}/s · ${Number.isFinite(left) ? `${duration(left)} left` : ''}` : '');
        // Said once it had to resume: from where the server stood, not from zero.
        if (u.resumedAt !== null && u.resumedAt > 0) status += ` · resumed at ${bytes(u.resumedAt)}`;
      }
      break;
    case 'done':
      status = 'Uploaded';
      break;
    case 'cancelled':
      status = 'Cancelled';
      break;
    default:
      status = 'Failed';
  }
  return (
    <li class={`upload-row s-${u.state}`} data-name={name}>
      <div class="upload-line">
        <span class="upload-name">{name}</span>
        <span class="muted">{bytes(u.file.size)}</span>
      </div>
      <progress max={100} value={u.state === 'done' ? 100 : pct} aria-label={`Progress of ${name}`} />
      <div class="upload-line">
        <span class="upload-status" aria-live={u.state === 'uploading' ? 'off' : 'polite'}>
          {status}
        </span>
        <span class="upload-actions">
          {u.state === 'done' && u.item && (
            <a class="button small" href={`/item/${u.item.id}`} onClick={onLinkClick}>
              Open<span class="visually-hidden"> {name}</span>
            </a>
          )}
          {isActive(u) && (
            <button type="button" class="button small" onClick={() => cancel(u.key)}>
              Cancel<span class="visually-hidden"> {name}</span>
            </button>
          )}
          {(u.state === 'failed' || u.state === 'cancelled') && (
            <button type="button" class="button small" onClick={() => retry(u.key)}>
              <Icon name="retry" size={16} />
              Retry<span class="visually-hidden"> {name}</span>
            </button>
          )}
        </span>
      </div>
      {u.error && (
        <p class="error" role="alert">
          {u.error}
        </p>
      )}
    </li>
  );
}
