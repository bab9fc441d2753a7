import type { DetailedError, HttpResponse, PreviousUpload, Upload as TusUpload, UploadOptions } from 'tus-js-client';
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
  /** While uploading: why it waits (the network is gone, the server is busy) and that it resumes by itself. */
  note: string;
  /** Where the server stood when this upload last resumed (bytes), or null if it never had to. */
  resumedAt: number | null;
  item: Item | null;
}

/** How many files go up at once: two keep the link busy without splitting it further. */
const PARALLEL = 2;

/**
 * The waits of tus-js-client between its own attempts after a failure (the counter starts again
 * whenever bytes got through); once they are spent the upload waits for the `online` event or
 * `RESUME_EVERY_MS`, and starts again from where the server stands, for as long as the tab is open.
 */
const RETRY_DELAYS = [0, 1000, 3000, 6000, 12000];
const RESUME_EVERY_MS = 20_000;
/** No byte and no answer for this long: the connection is taken for dead (a Wi-Fi gone without a reset) and opened again. */
const STALL_MS = 45_000;
/** Stored upload addresses older than this are forgotten (the server sweeps unfinished uploads after a day by default). */
const STORED_FOR_MS = 24 * 3600_000;

export const uploads = new Store<Upload[]>([]);

interface Running {
  tus: TusUpload | null;
  cancelled: boolean;
  /** Timer of a scheduled resume, of the stall watch. */
  resumeTimer: number;
  stallTimer: number;
  lastActivity: number;
  onOnline: (() => void) | null;
}
const running = new Map<number, Running>();
/** Upload addresses in use by a running upload of this tab: another file never resumes one of them. */
const urlsInUse = new Set<string>();
let nextKey = 1;

type Tus = typeof import('tus-js-client');
let tusModule: Promise<Tus> | null = null;

/**
 * tus-js-client, loaded the first time a file is queued (its own chunk, so the first load of the
 * app does not carry it). Stored upload addresses past their day are dropped on the way.
 */
function loadTus(): Promise<Tus> {
  tusModule ??= import('tus-js-client').then(async (tus) => {
    try {
      const storage = tus.defaultOptions.urlStorage;
      for (const old of await storage.findAllUploads()) {
        if (!(Date.parse(old.creationTime) > Date.now() - STORED_FOR_MS)) await storage.removeUpload(old.urlStorageKey);
      }
    } catch {
      /* storage unavailable (private mode): uploads still work, without resuming after a reload */
    }
    return tus;
  });
  tusModule.catch(() => (tusModule = null));
  return tusModule;
}

function patch(key: number, change: Partial<Upload>): void {
  uploads.set(uploads.get().map((u) => (u.key === key ? { ...u, ...change } : u)));
}

const current = (key: number) => uploads.get().find((u) => u.key === key);

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
    note: '',
    resumedAt: null,
    item: null,
  }));
  uploads.set([...uploads.get(), ...added]);
  pump();
}

/** Stops an upload; one that reached the server is ended there too (tus termination: its bytes are removed). */
export function cancel(key: number): void {
  const run = running.get(key);
  if (!run) return patch(key, { state: 'cancelled', note: '' });
  run.cancelled = true;
  stopTimers(run);
  running.delete(key);
  if (run.tus?.url) urlsInUse.delete(run.tus.url);
  patch(key, { state: 'cancelled', error: '', note: '', speed: 0 });
  // With the address known, abort(true) sends DELETE (retried like any request) and forgets the stored address.
  void run.tus?.abort(true).catch(() => undefined);
  pump();
}

export function retry(key: number): void {
  patch(key, { state: 'queued', loaded: 0, speed: 0, error: '', note: '' });
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

function stopTimers(run: Running): void {
  clearTimeout(run.resumeTimer);
  clearInterval(run.stallTimer);
  if (run.onOnline) removeEventListener('online', run.onOnline);
  run.onOnline = null;
}

/**
 * Where the file goes: its name, and its folder within the kind. A file of a picked or dropped
 * folder (`Trip/day1/beach.png`) goes into the folder typed in the form followed by its own folders,
 * exactly as POST /library places a multipart upload with a `path` field.
 */
export function targetOf(u: Pick<Upload, 'file' | 'path' | 'fields'>): { filename: string; folder: string } {
  const names = u.path.includes('/') ? u.path.normalize('NFC').split('/').filter((n) => n.length > 0) : [];
  const leaf = names.pop();
  return {
    filename: leaf ?? u.file.name,
    folder: [u.fields.folder?.trim() ?? '', ...names].filter((n) => n.length > 0).join('/'),
  };
}

/** The tus `Upload-Metadata` of a file: the same fields as a multipart upload's. */
function metadataOf(u: Upload): Record<string, string> {
  const { filename, folder } = targetOf(u);
  const f = u.fields;
  const m: Record<string, string> = { filename };
  // Only a type the server's rule takes (type/subtype): anything odder is left to the server's guess.
  if (/^[\w.+-]+\/[\w.+-]+$/.test(u.file.type)) m.filetype = u.file.type;
  if (f.title?.trim()) m.title = f.title.trim();
  if (f.kind) m.kind = f.kind;
  if (f.tags?.trim()) m.tags = f.tags;
  if (folder) m.folder = folder;
  return m;
}

const statusOf = (err: unknown) => (err as DetailedError).originalResponse?.getStatus() ?? 0;

/** Failures that pass by themselves: no connection, a busy or restarting server, an upload another request still holds. */
const passing = (status: number) => status === 0 || status === 409 || status === 423 || status === 502 || status === 503 || status === 504;

function problemOf(res: HttpResponse | null | undefined): { detail?: string; acceptedName?: string; acceptedFolder?: string } {
  try {
    return JSON.parse(res?.getBody() ?? '') as { detail?: string };
  } catch {
    return {};
  }
}

/** Words for a refusal that will not pass by itself. */
function refusal(err: unknown): string {
  const res = (err as DetailedError).originalResponse;
  const status = res?.getStatus() ?? 0;
  const problem = problemOf(res);
  if (status === 400 && problem.acceptedName) return `The file's name is refused: rename it to "${problem.acceptedName}" (the name the library accepts) and try again.`;
  if (status === 400 && problem.acceptedFolder) return `The folder's name is refused: the library accepts "${problem.acceptedFolder}".`;
  if (status === 401) return 'Not signed in, or the session has ended: log in again, then retry.';
  if (status === 429) return `The server is busy, or you have too many unfinished uploads: wait${res?.getHeader('retry-after') ? ` ${res.getHeader('retry-after')} s` : ' a little'} and retry.${problem.detail ? ` ${problem.detail.replace(/\.?$/, '.')}` : ''}`;
  if (status === 0) return 'The upload could not go on: the server cannot be reached.';
  return explain(status, problem.detail, res?.getHeader('retry-after'));
}

/**
 * Sends one file with the tus protocol (POST /api/v1/uploads, then PATCH from the server's offset):
 * the browser streams the File from disk (the tab's memory stays flat). A dropped connection, a busy
 * or restarting server or a closed lid is retried without the user: tus-js-client's own retries
 * first, then on the `online` event or every 20 s, each time from where the server stands (HEAD).
 * The upload's address is kept in localStorage under a fingerprint of the file and its details, so
 * picking the same file again after a reload continues it; it is forgotten once the item exists.
 */
function start(u: Upload): void {
  const run: Running = { tus: null, cancelled: false, resumeTimer: 0, stallTimer: 0, lastActivity: Date.now(), onOnline: null };
  running.set(u.key, run);
  patch(u.key, { state: 'uploading', loaded: 0, speed: 0, error: '', note: '', resumedAt: null });
  const finish = (change: Partial<Upload>) => {
    if (run.cancelled || running.get(u.key) !== run) return;
    stopTimers(run);
    running.delete(u.key);
    if (run.tus?.url) urlsInUse.delete(run.tus.url);
    patch(u.key, { note: '', speed: 0, ...change });
    pump();
  };
  loadTus().then(
    (tus) => {
      if (!run.cancelled) void send(tus, u, run, finish);
    },
    () => finish({ state: 'failed', error: 'The page could not load what it needs to upload: check the network and reload the page.' }),
  );
}

async function send(tus: Tus, u: Upload, run: Running, finish: (change: Partial<Upload>) => void): Promise<void> {
  const metadata = metadataOf(u);
  let lastAt = performance.now();
  let lastLoaded = -1;
  let speed = 0;
  let lastPaint = 0;
  // What the server said it holds (creation, PATCH and HEAD answers): the browser's own progress
  // counts bytes handed to the network, which a lost connection may never have delivered.
  let confirmed = 0;
  const options: UploadOptions = {
    endpoint: `${API}/uploads`,
    metadata,
    // The session cookie goes along (same origin); the CSRF header is what every change needs.
    headers: { 'x-nondivy-csrf': '1' },
    retryDelays: RETRY_DELAYS,
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    // Name, size, time and type say which file; its path and details say which upload of it (two
    // equal files in different folders, or with other tags, are different uploads).
    fingerprint: (file: File, o: UploadOptions) =>
      Promise.resolve(['nondivy', o.endpoint, file.name, file.size, file.lastModified, file.type, u.path, JSON.stringify(metadata)].join('|')),
    // Offline, retrying is pointless: wait for the `online` event instead (and say so at once).
    onShouldRetry: (err) => passing(statusOf(err)) && navigator.onLine !== false,
    // A HEAD is asked only to resume: it says where the server stands.
    onAfterResponse: (req, res) => {
      run.lastActivity = Date.now();
      const offset = Number(res.getHeader('upload-offset') ?? NaN);
      if (res.getStatus() < 300 && Number.isSafeInteger(offset)) confirmed = Math.min(offset, u.file.size);
      if (req.getMethod() === 'HEAD' && res.getStatus() === 200 && Number.isSafeInteger(offset)) patch(u.key, { resumedAt: offset, loaded: confirmed });
    },
    onUploadUrlAvailable: () => {
      if (upload.url) urlsInUse.add(upload.url);
    },
    onProgress: (sent) => {
      run.lastActivity = Date.now();
      const now = performance.now();
      if (lastLoaded < 0 || sent < lastLoaded) {
        // A (re)start: the offset is the server's, and the speed is measured from here.
        lastLoaded = sent;
        lastAt = now;
      }
      const dt = (now - lastAt) / 1000;
      if (dt >= 0.25) {
        const sample = (sent - lastLoaded) / dt;
        speed = speed === 0 ? sample : speed * 0.7 + sample * 0.3;
        lastAt = now;
        lastLoaded = sent;
      }
      // At most ~8 repaints a second per file.
      if (now - lastPaint > 120 || sent === u.file.size) {
        lastPaint = now;
        const change: Partial<Upload> = { loaded: Math.min(sent, u.file.size), speed };
        if (current(u.key)?.note) change.note = '';
        patch(u.key, change);
      }
    },
    onSuccess: ({ lastResponse }) => {
      const id = lastResponse.getHeader('nondivy-item-id');
      if (!id) return finish({ state: 'done', loaded: u.file.size });
      // The item as the library shows it (for its link); the upload is done whatever this answers.
      fetch(`${API}/library/${encodeURIComponent(id)}`, { credentials: 'same-origin', headers: { accept: 'application/json' } })
        .then((res) => (res.ok ? res.json() : Promise.reject(new Error(String(res.status)))))
        .then(
          (body) => finish({ state: 'done', loaded: u.file.size, item: Item.parse(body) }),
          () => finish({ state: 'done', loaded: u.file.size }),
        );
    },
    onError: (err) => {
      const status = statusOf(err);
      if (!passing(status)) {
        if (status === 401) sessionEnded();
        return finish({ state: 'failed', error: refusal(err) });
      }
      scheduleResume(status === 0 && navigator.onLine === false ? 'No network: the upload resumes by itself when it is back.' : status === 0 ? 'Connection lost: the upload resumes by itself.' : 'The server is busy or restarting: the upload resumes by itself.');
    },
  };
  const upload = new tus.Upload(u.file, options);
  run.tus = upload;

  /** Starts again from where the server stands (HEAD), now or after a wait, whichever of a timer or `online` comes first. */
  const resume = () => {
    if (run.cancelled) return;
    clearTimeout(run.resumeTimer);
    if (run.onOnline) removeEventListener('online', run.onOnline);
    run.onOnline = null;
    run.lastActivity = Date.now();
    upload.start();
  };
  const scheduleResume = (note: string) => {
    if (run.cancelled) return;
    patch(u.key, { note, speed: 0, loaded: confirmed });
    speed = 0;
    run.onOnline = resume;
    addEventListener('online', resume);
    run.resumeTimer = window.setTimeout(resume, RESUME_EVERY_MS);
  };
  // A connection that neither fails nor moves (Wi-Fi gone without a reset) is dropped and opened again.
  run.stallTimer = window.setInterval(() => {
    if (run.onOnline || Date.now() - run.lastActivity < STALL_MS) return;
    void upload.abort(false).then(() => {
      patch(u.key, { note: 'The connection stalled: resuming.' });
      resume();
    });
  }, 5000);

  try {
    const previous = (await upload.findPreviousUploads()).filter((p: PreviousUpload) => p.uploadUrl && !urlsInUse.has(p.uploadUrl));
    if (previous[0]) upload.resumeFromPreviousUpload(previous[0]);
  } catch {
    /* no stored addresses: a new upload */
  }
  if (!run.cancelled) upload.start();
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
