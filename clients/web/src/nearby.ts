// The contracts' browser-safe module, by file (see api.ts).
import { Device, DownloadTicketResponse, RegisterDeviceResponse, Transfer, type TransferState } from '../../../libs/contracts/src/devices.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { z } from 'zod';
import { API, ApiError, errorOf, explain, queryString } from './api.js';
import { Store } from './state.js';

/**
 * This tab as a device of the site ("Nearby"): registered while the view is open, heartbeating,
 * gone on pagehide (a keepalive DELETE). Devices and this device's transfers are polled; files go
 * up through the relay by XHR PUT of the File itself (streamed by the browser, with upload
 * progress) and come down through the download manager by a single-use ticket link, one file after
 * the other. Devices of linked sites are listed too (less often: each list asks every linked site);
 * files sent to one are checksummed first (SHA-256, which signs them across sites), a slice at a
 * time. No whole file is ever read into memory here.
 */

export type { Device, Transfer };

const DeviceList = z.object({ devices: z.array(Device) });
const SiteAnswer = z.object({ siteId: z.string(), name: z.string(), ok: z.boolean(), error: z.string().optional() });
const FederatedDeviceList = z.object({ devices: z.array(Device), sites: z.array(SiteAnswer).optional() });
export type SiteAnswer = z.infer<typeof SiteAnswer>;
const TransferList = z.object({ transfers: z.array(Transfer), nextCursor: z.string().nullable() });

const NAME_KEY = 'nondivy.deviceName';
const DEVICES_EVERY_MS = 2000;
const TRANSFERS_EVERY_MS = 1000;
const REMOTE_EVERY_MS = 10_000;
/** Files for a linked site are checksummed in slices of this size (memory stays flat). */
const DIGEST_SLICE = 4 * 1024 * 1024;

/** A friendly default name from the platform: "Chrome on Android", "Firefox on Linux". */
export function platformName(ua = navigator.userAgent): string {
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad|iPod/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS X|Macintosh/.test(ua) ? 'macOS' : /CrOS/.test(ua) ? 'ChromeOS' : /Linux/.test(ua) ? 'Linux' : 'a device';
  return `${browser} on ${os}`;
}

export function savedName(): string {
  try {
    return localStorage.getItem(NAME_KEY) || platformName();
  } catch {
    return platformName();
  }
}

/** Where the tab is as a device. */
export type Presence =
  | { state: 'off' }
  | { state: 'starting' }
  | { state: 'need-login'; detail: string }
  | { state: 'failed'; detail: string }
  | { state: 'online'; device: Device; token: string; heartbeatMs: number };

/** What this tab is doing for a transfer, beside the server's record. */
export interface Local {
  /** Outgoing: the files, kept only while they are being sent. */
  files?: File[];
  /** Outgoing: bytes of the current file sent, and which file. */
  sent?: { n: number; bytes: number };
  /** Incoming: files whose download was started (by index). */
  started?: number;
  /** What went wrong here. */
  error?: string;
  /** A text message, kept here after the server drops it at the end. */
  text?: string;
  xhr?: XMLHttpRequest;
}

export const presence = new Store<Presence>({ state: 'off' });
export const devices = new Store<Device[]>([]);
/** Devices of linked sites (each with its `site`), and how each linked site answered. */
export const remote = new Store<{ devices: Device[]; sites: SiteAnswer[] }>({ devices: [], sites: [] });
export const transfers = new Store<Transfer[]>([]);
export const locals = new Store<Record<string, Local>>({});

const setLocal = (id: string, patch: Partial<Local>) => locals.set({ ...locals.get(), [id]: { ...locals.get()[id], ...patch } });
const local = (id: string): Local => locals.get()[id] ?? {};

const FINAL: TransferState[] = ['rejected', 'cancelled', 'expired', 'completed', 'failed'];
export const isFinal = (t: Transfer) => FINAL.includes(t.state);

function online(): Extract<Presence, { state: 'online' }> {
  const p = presence.get();
  if (p.state !== 'online') throw new ApiError(0, 'This tab is not online as a device.');
  return p;
}

/** A call as this device: the session cookie (if any), the CSRF header and X-Device-Token. */
async function deviceCall<T>(method: string, path: string, opts: { schema?: z.ZodType<T>; json?: unknown; query?: Record<string, string | number | undefined>; keepalive?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const p = presence.get();
  if (p.state === 'online') headers['x-device-token'] = p.token;
  if (method !== 'GET') headers['x-nondivy-csrf'] = '1';
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(API + path + queryString(opts.query ?? {}), {
      method,
      headers,
      credentials: 'same-origin',
      body: opts.json === undefined ? undefined : JSON.stringify(opts.json),
      keepalive: opts.keepalive,
    });
  } catch {
    throw new ApiError(0, explain(0, undefined));
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204 || !opts.schema) return undefined as T;
  return opts.schema.parse(await res.json());
}

let timers: ReturnType<typeof setTimeout>[] = [];
let running = false;

/** Registers this tab as a device (name: remembered, else the platform's) and starts following. */
export async function goOnline(): Promise<void> {
  if (running) return;
  running = true;
  presence.set({ state: 'starting' });
  try {
    const r = await deviceCall('POST', '/devices', { schema: RegisterDeviceResponse, json: { name: savedName() } });
    if (!running) {
      // The view closed (or the page went) while registering: leave at once.
      void fetch(`${API}/devices/${r.device.id}`, { method: 'DELETE', headers: { 'x-device-token': r.token, 'x-nondivy-csrf': '1' }, credentials: 'same-origin', keepalive: true }).catch(() => undefined);
      return;
    }
    presence.set({ state: 'online', device: r.device, token: r.token, heartbeatMs: r.heartbeatMs });
  } catch (err) {
    running = false;
    const e = err as ApiError;
    presence.set(e.status === 401 ? { state: 'need-login', detail: String(e.problem.detail ?? '') } : { state: 'failed', detail: e.message });
    return;
  }
  addEventListener('pagehide', leaveOnHide);
  loop(heartbeat, online().heartbeatMs);
  loop(refreshDevices, DEVICES_EVERY_MS);
  loop(refreshTransfers, TRANSFERS_EVERY_MS);
  loop(refreshRemote, REMOTE_EVERY_MS);
}

function loop(task: () => Promise<void>, everyMs: number) {
  const run = async () => {
    if (!running) return;
    try {
      await task();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && running) {
        // The site forgot this device (expired, restarted): come back under a new id.
        await goOffline(false);
        void goOnline();
        return;
      }
    }
    if (running) timers.push(setTimeout(run, everyMs));
  };
  void run();
}

const heartbeat = () => deviceCall<void>('PUT', `/devices/${online().device.id}/heartbeat`);
async function refreshDevices() {
  const me = online().device.id;
  devices.set((await deviceCall('GET', '/devices', { schema: DeviceList })).devices.filter((d) => d.id !== me));
}

async function refreshRemote() {
  const found = await deviceCall('GET', '/devices', { schema: FederatedDeviceList, query: { scope: 'federated' } });
  remote.set({ devices: found.devices.filter((d) => d.site !== undefined), sites: found.sites ?? [] });
}

/** The name of a linked site, as it answered the last device list (else its id). */
export const siteName = (siteId: string) => remote.get().sites.find((s) => s.siteId === siteId)?.name ?? siteId;

function leaveOnHide() {
  const p = presence.get();
  if (p.state !== 'online') return;
  // keepalive: the request outlives the page; the others see this tab go at once.
  void deviceCall('DELETE', `/devices/${p.device.id}`, { keepalive: true }).catch(() => undefined);
}

/** Leaves the site (the view closes, or the name changes): open transfers are cancelled by the server's rules as they time out. */
export async function goOffline(tell = true): Promise<void> {
  const p = presence.get();
  running = false;
  for (const t of timers) clearTimeout(t);
  timers = [];
  removeEventListener('pagehide', leaveOnHide);
  if (tell && p.state === 'online') await deviceCall('DELETE', `/devices/${p.device.id}`).catch(() => undefined);
  presence.set({ state: 'off' });
  devices.set([]);
  remote.set({ devices: [], sites: [] });
}

/** A new name: remembered, and the tab comes back under it. */
export async function rename(name: string): Promise<void> {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    /* private mode: the name lasts this visit */
  }
  await goOffline();
  await goOnline();
}

// ---- transfers -------------------------------------------------------------------------------

async function refreshTransfers() {
  const list = (await deviceCall('GET', '/transfers', { schema: TransferList, query: { limit: 50 } })).transfers;
  transfers.set(list);
  const me = online().device.id;
  for (const t of list) {
    const l = local(t.id);
    if (t.text && l.text === undefined) setLocal(t.id, { text: t.text });
    if (t.from.device === me) onOutgoing(t, l);
    else onIncoming(t, l);
  }
}

function onOutgoing(t: Transfer, l: Local) {
  if (t.state === 'accepted' && l.files && !l.sent) void sendFiles(t, l.files);
  if (isFinal(t) && l.xhr) {
    l.xhr.abort();
    setLocal(t.id, { xhr: undefined, files: undefined });
  } else if (isFinal(t) && l.files) setLocal(t.id, { files: undefined });
}

function onIncoming(t: Transfer, l: Local) {
  if (t.state === 'offered' && t.files.length === 0 && t.text && l.started === undefined) {
    // A text alone is shown at once (nothing is written anywhere): taken and finished.
    setLocal(t.id, { started: 0 });
    void deviceCall('POST', `/transfers/${t.id}/accept`, { json: {} })
      .then(() => deviceCall('POST', `/transfers/${t.id}/finish`, { json: { ok: true } }))
      .catch((err: Error) => setLocal(t.id, { error: err.message }));
    return;
  }
  if (t.state !== 'accepted' || l.started === undefined) return;
  // One download at a time: the next once the relay delivered the one before.
  const next = l.started;
  if (next < t.files.length && (t.progress?.files ?? 0) >= next) void download(t, next);
}

async function download(t: Transfer, i: number) {
  setLocal(t.id, { started: i + 1 });
  try {
    const ticket = await deviceCall('POST', `/transfers/${t.id}/files/${t.files[i]!.n}/ticket`, { schema: DownloadTicketResponse });
    // A plain link: the browser's download manager takes the bytes (Content-Disposition: attachment).
    const a = document.createElement('a');
    a.href = ticket.url;
    a.download = '';
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    setLocal(t.id, { error: (err as Error).message });
  }
}

/**
 * The SHA-256 of a file, read a slice at a time (File.slice: the browser reads from disk; one slice
 * in memory at once). Plain JavaScript: crypto.subtle needs a secure context, which a LAN address
 * over http is not.
 */
export async function digestOf(file: File, onBytes: (done: number) => void, signal?: AbortSignal): Promise<string> {
  const hash = sha256.create();
  for (let at = 0; at < file.size; at += DIGEST_SLICE) {
    if (signal?.aborted) throw new ApiError(0, 'Stopped.');
    hash.update(new Uint8Array(await file.slice(at, at + DIGEST_SLICE).arrayBuffer()));
    onBytes(Math.min(file.size, at + DIGEST_SLICE));
  }
  return bytesToHex(hash.digest());
}

/**
 * Offers files (and/or a text) to a device; the files go once it accepts. To a device of a linked
 * site (`id@site`), files only, each with its SHA-256 (checksummed here first, with `onDigest`
 * told the bytes done of all files).
 */
export async function offer(to: Device, files: File[], text?: string, opts: { onDigest?: (done: number, total: number) => void; signal?: AbortSignal } = {}): Promise<Transfer> {
  const me = online().device.id;
  const described: { name: string; size: number; sha256?: string }[] = files.map((f) => ({ name: (f.webkitRelativePath || f.name).slice(0, 1000), size: f.size }));
  if (to.site !== undefined) {
    if (text) throw new ApiError(0, 'Texts go to devices of this site only.');
    const total = files.reduce((s, f) => s + f.size, 0);
    let before = 0;
    for (const [i, f] of files.entries()) {
      const sha = await digestOf(f, (done) => opts.onDigest?.(before + done, total), opts.signal);
      before += f.size;
      described[i]!.sha256 = sha;
    }
  }
  const t = await deviceCall('POST', '/transfers', {
    schema: Transfer,
    json: { from: me, to: to.site !== undefined ? `${to.id}@${to.site}` : to.id, files: described, ...(text ? { text } : {}) },
  });
  setLocal(t.id, { files: files.length ? files : undefined, ...(text ? { text } : {}) });
  transfers.set([t, ...transfers.get()]);
  return t;
}

function put(url: string, file: File, onBytes: (n: number) => void, t: Transfer): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.setRequestHeader('x-device-token', online().token);
    xhr.setRequestHeader('x-nondivy-csrf', '1');
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onBytes(e.loaded);
    xhr.onload = () => {
      if (xhr.status < 300) return resolve();
      let detail: string | undefined;
      try {
        detail = (JSON.parse(xhr.responseText) as { detail?: string }).detail;
      } catch {
        /* not JSON */
      }
      reject(new ApiError(xhr.status, explain(xhr.status, detail)));
    };
    xhr.onerror = () => reject(new ApiError(0, 'The connection to the server broke.'));
    xhr.onabort = () => reject(new ApiError(0, 'Stopped.'));
    setLocal(t.id, { xhr });
    // The File itself as the body: the browser streams it from disk.
    xhr.send(file);
  });
}

async function sendFiles(t: Transfer, files: File[]) {
  setLocal(t.id, { sent: { n: 0, bytes: 0 } });
  try {
    await deviceCall('POST', `/transfers/${t.id}/route`, { json: { route: 'relay' } });
    for (const [i, f] of files.entries()) {
      const n = t.files[i]!.n;
      setLocal(t.id, { sent: { n: i, bytes: 0 } });
      await put(`${API}/transfers/${t.id}/files/${n}`, f, (bytes) => setLocal(t.id, { sent: { n: i, bytes } }), t);
    }
    setLocal(t.id, { sent: { n: files.length, bytes: 0 }, xhr: undefined, files: undefined });
  } catch (err) {
    setLocal(t.id, { xhr: undefined, files: undefined });
    // The other side may have said why first (it cancelled, its tab closed): the record tells.
    const latest = await deviceCall('GET', `/transfers/${t.id}`, { schema: Transfer }).catch(() => null);
    if (latest && isFinal(latest)) return;
    const reason = `Sending failed: ${(err as Error).message}`;
    setLocal(t.id, { error: reason });
    await deviceCall('POST', `/transfers/${t.id}/finish`, { json: { ok: false, reason: reason.slice(0, 500) } }).catch(() => undefined);
  }
}

export async function accept(t: Transfer): Promise<void> {
  await deviceCall('POST', `/transfers/${t.id}/accept`, { json: {} });
  setLocal(t.id, { started: 0 });
  if (t.files.length === 0) await deviceCall('POST', `/transfers/${t.id}/finish`, { json: { ok: true } });
}

export const reject = (t: Transfer) => deviceCall('POST', `/transfers/${t.id}/reject`, { json: { reason: 'Declined on the receiving device' } });

export async function cancel(t: Transfer, role: 'sender' | 'receiver'): Promise<void> {
  await deviceCall('DELETE', `/transfers/${t.id}`, { json: { reason: `Cancelled on the ${role === 'sender' ? 'sending' : 'receiving'} device` } });
  local(t.id).xhr?.abort();
}
