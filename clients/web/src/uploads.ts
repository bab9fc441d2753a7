import { API, explain, Item } from './api.js';
import { sessionEnded, Store } from './state.js';

/** What the uploader says about the files, set before they are added (and editable on each item after). */
export interface UploadFields {
  title?: string;
  kind?: string;
  tags?: string;
  folder?: string;
}

export type UploadState = 'queued' | 'uploading' | 'done' | 'failed' | 'cancelled';

export interface Upload {
  key: number;
  file: File;
  /** The file's path within a folder that was picked or dropped (`Album/CD1/01.flac`), else ''. */
  path: string;
  fields: UploadFields;
  state: UploadState;
  loaded: number;
  /** Bytes per second, smoothed. */
  speed: number;
  error: string;
  item: Item | null;
}

/** How many files go up at once: two keep the link busy without splitting it further. */
const PARALLEL = 2;

export const uploads = new Store<Upload[]>([]);
const running = new Map<number, XMLHttpRequest>();
let nextKey = 1;
/** Set when the server refuses the folder fields (a server from before folders): files then go to the kind's top level. */
let noFolderFields = false;

function patch(key: number, change: Partial<Upload>): void {
  uploads.set(uploads.get().map((u) => (u.key === key ? { ...u, ...change } : u)));
}

/** Queues files; `path` gives each file's relative path when they come from a folder. */
export function enqueue(files: { file: File; path: string }[], fields: UploadFields): void {
  const added = files.map(({ file, path }) => ({
    key: nextKey++,
    file,
    path,
    fields: { ...fields, title: files.length === 1 ? fields.title : undefined },
    state: 'queued' as const,
    loaded: 0,
    speed: 0,
    error: '',
    item: null,
  }));
  uploads.set([...uploads.get(), ...added]);
  pump();
}

export function cancel(key: number): void {
  const xhr = running.get(key);
  if (xhr) xhr.abort();
  else patch(key, { state: 'cancelled' });
}

export function retry(key: number): void {
  patch(key, { state: 'queued', loaded: 0, speed: 0, error: '' });
  pump();
}

export function clearFinished(): void {
  uploads.set(uploads.get().filter((u) => u.state === 'queued' || u.state === 'uploading'));
}

export const isActive = (u: Upload) => u.state === 'queued' || u.state === 'uploading';

function pump(): void {
  for (const u of uploads.get()) {
    if (running.size >= PARALLEL) return;
    if (u.state === 'queued') start(u);
  }
}

/**
 * Sends one file as multipart/form-data through XMLHttpRequest: the browser streams the File from
 * disk (the tab's memory stays flat), and upload progress events give progress, speed and time left.
 * The text fields go before the file part, as the server reads them first.
 */
function start(u: Upload): void {
  const form = new FormData();
  const f = u.fields;
  if (f.title?.trim()) form.append('title', f.title.trim());
  if (f.kind) form.append('kind', f.kind);
  if (f.tags?.trim()) form.append('tags', f.tags);
  if (!noFolderFields) {
    if (f.folder?.trim()) form.append('folder', f.folder.trim());
    if (u.path && u.path.includes('/')) form.append('path', u.path);
  }
  form.append('file', u.file, u.file.name);

  const xhr = new XMLHttpRequest();
  running.set(u.key, xhr);
  patch(u.key, { state: 'uploading', loaded: 0, speed: 0, error: '' });
  let lastAt = performance.now();
  let lastLoaded = 0;
  let speed = 0;
  let lastPaint = 0;
  xhr.upload.onprogress = (e) => {
    const now = performance.now();
    const dt = (now - lastAt) / 1000;
    if (dt >= 0.25) {
      const sample = (e.loaded - lastLoaded) / dt;
      speed = speed === 0 ? sample : speed * 0.7 + sample * 0.3;
      lastAt = now;
      lastLoaded = e.loaded;
    }
    // At most ~8 repaints a second per file.
    if (now - lastPaint > 120 || e.loaded === e.total) {
      lastPaint = now;
      patch(u.key, { loaded: Math.min(e.loaded, u.file.size), speed });
    }
  };
  const finish = (change: Partial<Upload>) => {
    running.delete(u.key);
    patch(u.key, change);
    pump();
  };
  xhr.onload = () => {
    if (xhr.status === 201) {
      try {
        return finish({ state: 'done', loaded: u.file.size, item: Item.parse(JSON.parse(xhr.responseText)) });
      } catch {
        return finish({ state: 'done', loaded: u.file.size });
      }
    }
    let problem: { detail?: string } = {};
    try {
      problem = JSON.parse(xhr.responseText) as { detail?: string };
    } catch {
      /* not JSON */
    }
    if (xhr.status === 400 && /Unknown field "(path|folder)"/.test(problem.detail ?? '') && !noFolderFields) {
      noFolderFields = true;
      return finish({ state: 'queued' });
    }
    if (xhr.status === 401) sessionEnded();
    finish({ state: 'failed', error: explain(xhr.status, problem.detail, xhr.getResponseHeader('retry-after')) });
  };
  xhr.onerror = () =>
    finish({ state: 'failed', error: 'The upload was cut off: the network failed, or the server refused the file (too large, or it is shutting down).' });
  xhr.onabort = () => finish({ state: 'cancelled', error: '' });
  xhr.open('POST', `${API}/library`);
  xhr.setRequestHeader('x-nondivy-csrf', '1');
  xhr.setRequestHeader('accept', 'application/json');
  xhr.send(form);
}

/** Asks before the page is left while files are still going up (leaving would cut them). */
export function startUploadsWarning(): void {
  addEventListener('beforeunload', (e) => {
    if (uploads.get().some(isActive)) e.preventDefault();
  });
}

/**
 * The files of a drop, folders walked recursively with their relative paths. The entries must be
 * taken during the drop event itself; `readEntries` gives at most 100 at a time, so it is called
 * until it returns none.
 */
export async function filesOfDrop(items: DataTransferItemList): Promise<{ file: File; path: string }[]> {
  const entries: FileSystemEntry[] = [];
  const loose: File[] = [];
  for (const item of Array.from(items)) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const f = item.getAsFile();
      if (f) loose.push(f);
    }
  }
  const out: { file: File; path: string }[] = loose.map((file) => ({ file, path: '' }));
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      const path = entry.fullPath.replace(/^\/+/, '');
      out.push({ file, path: path.includes('/') ? path : '' });
      return;
    }
    if (!entry.isDirectory) return;
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) break;
      for (const child of batch) await walk(child);
    }
  };
  for (const entry of entries) await walk(entry);
  return out;
}
