import { basename } from 'node:path';
import { Transfer, type TransferState } from '@nondivy/contracts';
import type { Api } from './api.js';
import { DeviceList } from './schemas.js';
import type { Context } from './context.js';
import { DeviceSession } from './device.js';
import { CliError, isInterruption, messageOf } from './errors.js';
import { sha256File, statOrNull } from './files.js';
import { printable } from './format.js';
import { ProgressBar } from './progress.js';
import { PutFailure, putFile } from './put.js';
import { POLL_MS, sleep } from './wait.js';

/** A file to send: where it is, and what is offered (its base name, size and SHA-256). */
export interface LocalFile {
  path: string;
  name: string;
  size: number;
  sha256: string;
}

/** How long the first direct PUT may take to connect before the relay is used instead. */
const DIRECT_CONNECT_MS = 3000;
/** How long to wait for the receiver's verdict once every byte is sent. */
const CONFIRM_WAIT_MS = 120_000;

/** Sending a file failed: the transfer is reported failed before exiting. */
class DeliveryFailed extends CliError {}

/** The first direct PUT could not connect: fall back to the relay. */
class DirectUnreachable extends Error {}

/** Checks and hashes the files (streamed, with progress). */
export async function prepareFiles(paths: string[], ctx: Context): Promise<LocalFile[]> {
  const files: LocalFile[] = [];
  for (const path of paths) {
    const stats = await statOrNull(path);
    if (!stats) throw new CliError(`${path}: no such file`);
    if (!stats.isFile()) throw new CliError(`${path}: not a regular file`);
    files.push({ path, name: basename(path), size: stats.size, sha256: '' });
  }
  for (const f of files) {
    const bar = new ProgressBar(`hashing ${f.name}`, f.size, ctx.progress && f.size > 64 * 1024 * 1024);
    f.sha256 = await sha256File(f.path, (n) => bar.add(n), ctx.signal);
    bar.finish(true);
  }
  return files;
}

/**
 * The `to` of the offer: a device id, or the one online device with that exact name (never this
 * one); `DEVICE@SITE` goes to the server as it is (a device of a linked site).
 */
export async function resolveRecipient(api: Api, to: string, myId: string): Promise<string> {
  if (to.includes('@')) return to;
  const { devices } = await api.call(DeviceList, 'GET', '/devices');
  if (devices.some((d) => d.id === to)) return to;
  const named = devices.filter((d) => d.name === to && d.id !== myId);
  if (named.length === 0) throw new CliError(`no device named "${to}" is online (see "nondivy devices")`);
  if (named.length > 1) {
    throw new CliError(`several devices are named "${to}": ${named.map((d) => `${d.id} (${d.owner})`).join(', ')}; pass one of these ids to --to`);
  }
  return named[0]!.id;
}

/** Polls the transfer while it is in one of `states`; stops at `deadline` (returns the last look). */
async function pollWhile(api: Api, session: DeviceSession, id: string, states: TransferState[], deadline: number, signal: AbortSignal): Promise<Transfer> {
  for (;;) {
    const t = await api.call(Transfer, 'GET', `/transfers/${id}`, { deviceToken: session.token });
    if (!states.includes(t.state) || Date.now() >= deadline) return t;
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())), signal);
  }
}

function outcome(t: Transfer): string {
  const who = printable(t.to.name);
  const reason = t.reason ? `: ${printable(t.reason)}` : '';
  switch (t.state) {
    case 'rejected':
      return `${who} rejected the offer${reason}`;
    case 'expired':
      return `the offer to ${who} expired${reason}`;
    case 'cancelled':
      return `the transfer was cancelled${reason}`;
    case 'failed':
      return `the transfer failed${reason}`;
    default:
      return `the transfer is ${t.state}${reason}`;
  }
}

interface Target {
  url(n: number): string;
  headers: Record<string, string>;
  /** Direct: the first file's connection failure means "use the relay". */
  direct: boolean;
}

async function sendAll(t: Transfer, files: LocalFile[], target: Target, ctx: Context): Promise<void> {
  for (const [i, f] of files.entries()) {
    const n = t.files[i]?.n ?? i;
    const bar = new ProgressBar(`sending ${f.name}`, f.size, ctx.progress);
    try {
      await putFile({
        url: target.url(n),
        headers: target.headers,
        path: f.path,
        size: f.size,
        onBytes: (b) => bar.add(b),
        signal: ctx.signal,
        connectTimeoutMs: target.direct && i === 0 ? DIRECT_CONNECT_MS : 30_000,
      });
      bar.finish(true);
    } catch (err) {
      bar.finish(false);
      if (isInterruption(err, ctx.signal)) throw err;
      if (target.direct && i === 0 && err instanceof PutFailure && err.kind === 'connect') throw new DirectUnreachable(err.message);
      const where = target.direct ? 'directly' : 'through the relay';
      throw new DeliveryFailed(`sending ${f.name} ${where} failed: ${messageOf(err)}`);
    }
  }
}

/** Sends the bytes: straight to the receiver when it gave a direct URL and answers, else the relay. */
async function deliver(api: Api, session: DeviceSession, t: Transfer, files: LocalFile[], ctx: Context): Promise<'direct' | 'relay'> {
  const device = { deviceToken: session.token };
  if (t.directUrl && t.directToken) {
    const base = t.directUrl.replace(/\/+$/, '');
    await api.send('POST', `/transfers/${t.id}/route`, { ...device, json: { route: 'direct' } });
    try {
      await sendAll(t, files, { url: (n) => `${base}/transfers/${t.id}/files/${n}`, headers: { authorization: `Bearer ${t.directToken}` }, direct: true }, ctx);
      return 'direct';
    } catch (err) {
      if (!(err instanceof DirectUnreachable)) throw err;
      ctx.out.note(`cannot reach ${printable(t.to.name)} directly (${err.message}): using the relay`);
    }
  }
  await api.send('POST', `/transfers/${t.id}/route`, { ...device, json: { route: 'relay' } });
  await sendAll(t, files, { url: (n) => api.url(`/transfers/${t.id}/files/${n}`), headers: { 'x-device-token': session.token }, direct: false }, ctx);
  return 'relay';
}

/**
 * `nondivy send`: registers this device, offers the files, waits for the answer, sends the bytes
 * (direct or relay) and waits for the receiver's verdict. Unregisters on every way out; withdraws
 * the offer when interrupted or when the local timeout passes.
 */
export async function sendFiles(ctx: Context, paths: string[], to: string, timeoutMs: number | undefined): Promise<void> {
  const files = await prepareFiles(paths, ctx);
  const api = await ctx.api({ login: 'required' });
  const session = await DeviceSession.register(api, ctx.out, ctx.deviceName);
  const device = { deviceToken: session.token };
  let transfer: Transfer | undefined;
  let settled = false;
  try {
    const recipient = await resolveRecipient(api, to, session.id);
    transfer = await api.call(Transfer, 'POST', '/transfers', {
      ...device,
      json: { from: session.id, to: recipient, files: files.map(({ name, size, sha256 }) => ({ name, size, sha256 })) },
    });
    ctx.out.note(`offered ${files.length} file${files.length === 1 ? '' : 's'} to ${printable(transfer.to.name)}, waiting…`);

    const deadline = timeoutMs !== undefined ? Date.now() + timeoutMs : Date.parse(transfer.expiresAt) + 5000;
    const answered = await pollWhile(api, session, transfer.id, ['offered'], deadline, ctx.signal);
    if (answered.state === 'offered') {
      await api.send('DELETE', `/transfers/${transfer.id}`, { ...device, json: { reason: 'sender gave up' }, cleanup: true }).catch(() => undefined);
      settled = true;
      throw new CliError(`${printable(transfer.to.name)} did not answer in time: the offer is withdrawn`);
    }
    if (answered.state !== 'accepted') {
      settled = true;
      throw new CliError(outcome(answered));
    }
    ctx.out.note(`${printable(answered.to.name)} accepted`);

    let route: 'direct' | 'relay';
    try {
      route = await deliver(api, session, answered, files, ctx);
    } catch (err) {
      if (!(err instanceof DeliveryFailed)) throw err;
      settled = true;
      // The receiver may have said why first (it stopped, a file did not match).
      const latest = await api.call(Transfer, 'GET', `/transfers/${transfer.id}`, { ...device, cleanup: true }).catch(() => undefined);
      if (latest && latest.state !== 'accepted') throw new CliError(`${err.message} (${outcome(latest)})`);
      await api.send('POST', `/transfers/${transfer.id}/finish`, { ...device, json: { ok: false, reason: err.message.slice(0, 500) }, cleanup: true }).catch(() => undefined);
      throw err;
    }

    const verdict = await pollWhile(api, session, transfer.id, ['accepted'], Date.now() + CONFIRM_WAIT_MS, ctx.signal);
    settled = verdict.state !== 'accepted';
    if (verdict.state !== 'completed') {
      throw new CliError(verdict.state === 'accepted' ? `${printable(verdict.to.name)} did not confirm the delivery in time` : outcome(verdict));
    }
    ctx.out.data({ transfer: verdict.id, state: verdict.state, route, to: verdict.to, files: verdict.files });
    ctx.out.line('delivered');
  } catch (err) {
    if (transfer && !settled && isInterruption(err, ctx.signal)) {
      await api.send('DELETE', `/transfers/${transfer.id}`, { ...device, json: { reason: 'cancelled by the sender' }, cleanup: true }).catch(() => undefined);
    }
    throw err;
  } finally {
    await session.close();
  }
}
