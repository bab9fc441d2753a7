import { Item } from '@nondivy/contracts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Api } from './api.js';
import type { Context } from './context.js';
import { CliError, isInterruption } from './errors.js';
import { formatBytes } from './format.js';
import { ProgressBar } from './progress.js';
import { encodeMetadata, itemIdOf, offsetHeader, TusFailure, tusRequest, type TusRequest } from './tus.js';
import { UploadRecords, type RecordKey } from './upload-records.js';

/** One file to send over tus: where it is (absolute), its size and time, and the item's fields. */
export interface ResumableFile {
  /** Absolute path. */
  path: string;
  size: number;
  mtimeMs: number;
  /** Shown in the progress bar and messages. */
  label: string;
  /** tus metadata: filename (required), title, kind, tags, description, folder. */
  metadata: Record<string, string | undefined>;
}

/** Waits between tries after a failure that passes (the count starts again whenever bytes got through). */
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15_000, 30_000, 30_000, 30_000];

/** Busy answers (423) in a row before giving up: about a minute at the server's Retry-After of 1 s. */
const MAX_BUSY_TRIES = 60;

/**
 * Shared by the files of one command: whether the server has answered anything yet. A server that
 * cannot be reached at all before that is reported at once (as every other command does), not retried.
 */
export interface UploadSession {
  reached: boolean;
}

/**
 * A failure after which the upload can be continued by running the command again: the server could
 * not be reached, or stayed busy. (A 409 that gets this far was a refusal, not an offset to ask for.)
 */
export function isPassingFailure(err: unknown): boolean {
  const cause = err instanceof CliError ? err.cause : err;
  return cause instanceof TusFailure && cause.passing && cause.status !== 409;
}

const pct = (n: number, of: number) => (of > 0 ? `${Math.floor((n / of) * 100)}%` : '100%');

/**
 * Sends one file with the tus protocol and resolves with the item it became. The upload's address
 * is recorded (upload-records.ts) before the first byte goes, so that after an interruption —
 * Ctrl-C, a dropped network, a server restart, a retry budget spent — the same command continues
 * from the server's offset (HEAD) instead of from zero, and says so; the record goes once the item
 * exists. Within one run, a connection lost or a busy server is retried from the server's offset
 * with backoff. The Location a server gives must be on its own origin: the login token goes nowhere else.
 */
export async function sendResumable(
  api: Api,
  ctx: Context,
  file: ResumableFile,
  session: UploadSession = { reached: false },
  records = new UploadRecords(ctx.env),
): Promise<Item> {
  const endpoint = api.url('/uploads');
  const origin = new URL(endpoint).origin;
  const auth: Record<string, string> = api.token ? { authorization: `Bearer ${api.token}` } : {};
  const metadata = encodeMetadata(file.metadata);
  const key: RecordKey = { server: api.server, path: file.path, size: file.size, mtimeMs: file.mtimeMs };
  const signal = ctx.signal;

  /** One tus request; any answer (even an error) means the server was reached. */
  const request = async (o: Omit<TusRequest, 'signal'>) => {
    try {
      const answer = await tusRequest({ ...o, signal });
      session.reached = true;
      return answer;
    } catch (err) {
      if (err instanceof TusFailure && err.status > 0) session.reached = true;
      throw err;
    }
  };
  const head = async (url: string) => {
    const answer = await request({ method: 'HEAD', url, headers: auth });
    const offset = offsetHeader(answer.headers['upload-offset']);
    const length = offsetHeader(answer.headers['upload-length']);
    if (offset === null || length === null || offset > length) throw new CliError(`the server at ${api.server} answered HEAD ${url} without a usable Upload-Offset`);
    return { offset, length, itemId: itemIdOf(answer.headers) };
  };
  const terminate = (url: string) => request({ method: 'DELETE', url, headers: auth }).then(() => undefined, () => undefined);

  // Records of this path whose file has changed since: those uploads can never finish.
  for (const old of await records.stale(key)) {
    if (new URL(old.url).origin === origin) await terminate(old.url);
    await records.remove(old);
  }

  let url: string | null = null;
  let offset = 0;
  let itemId: string | null = null;
  const record = await records.find(key);
  if (record && record.metadata !== metadata) {
    ctx.out.note(`${file.label}: other details than the interrupted upload of it: starting again`);
    if (new URL(record.url).origin === origin) await terminate(record.url);
    await records.remove(key);
  } else if (record && new URL(record.url).origin === origin) {
    url = record.url;
  }

  // Made once the starting offset is known, so that its speed counts only what this run sends.
  let bar: ProgressBar | null = null;
  let failures = 0;
  /** The offset of the last 409 with no byte moved since: a second one there is no offset mismatch but a refusal. */
  let conflictAt: number | null = null;
  /** The last 409 answer: an upload gone right after one was refused by the server (which dropped it), not lost. */
  let conflict: TusFailure | null = null;
  /** Times this run started the upload again: bounded, so that a server that keeps dropping it cannot loop. */
  let restarts = 0;
  /**
   * The upload may be busy (a 423, or a failure whose request may still hold it on the server, as
   * may a process that died): the next body waits until an empty PATCH gets through, so that no
   * byte is sent only to be refused. Busy answers wait Retry-After and have a budget of their own (a dead holder's lock
   * lasts some seconds).
   */
  let busy = false;
  let busyTries = 0;
  /** The offset last said to be resumed from (said again only when it moved). */
  let noted = -1;
  let resumed = url !== null;
  try {
    for (;;) {
      let moved = 0;
      try {
        if (url && resumed) {
          let at: Awaited<ReturnType<typeof head>> | null = null;
          try {
            at = await head(url);
          } catch (err) {
            // The server no longer knows it (expired, swept, another login's): start again.
            if (!(err instanceof TusFailure) || !(err.status === 404 || err.status === 410 || err.status === 403)) throw err;
          }
          if (!at || at.length !== file.size) {
            if (conflict) {
              await records.remove(key);
              throw conflict;
            }
            if (++restarts > 2) throw new CliError(`the server at ${api.server} dropped the upload of ${file.label} again and again`);
            ctx.out.note(`${file.label}: the server no longer has the interrupted upload: starting again`);
            if (at) await terminate(url);
            await records.remove(key);
            url = null;
            offset = 0;
          } else {
            offset = at.offset;
            itemId = at.itemId;
            if (offset !== noted) ctx.out.note(`${file.label}: resuming at ${formatBytes(offset)} of ${formatBytes(file.size)} (${pct(offset, file.size)}, byte ${offset})`);
            noted = offset;
          }
          resumed = false;
        }
        if (!url) {
          const created = await request({ method: 'POST', url: endpoint, headers: { ...auth, 'upload-length': String(file.size), 'upload-metadata': metadata } });
          const location = created.headers.location;
          if (typeof location !== 'string') throw new CliError(`the server at ${api.server} created the upload without saying where (no Location)`);
          const at = new URL(location, endpoint);
          if (at.origin !== origin) throw new CliError(`the server at ${api.server} put the upload on another site (${at.origin}): refused`);
          url = at.href;
          offset = offsetHeader(created.headers['upload-offset']) ?? 0;
          itemId = itemIdOf(created.headers);
          if (!itemId) await records.save({ ...key, url, metadata, createdAt: new Date().toISOString() });
        }
        if (!itemId && offset < file.size && busy) {
          const answer = await request({ method: 'PATCH', url, headers: { ...auth, 'upload-offset': String(offset) } });
          offset = offsetHeader(answer.headers['upload-offset']) ?? offset;
          itemId = itemIdOf(answer.headers);
          busy = false;
        }
        if (!itemId && offset < file.size) {
          bar ??= new ProgressBar(`uploading ${file.label}`, file.size, ctx.progress, offset);
          bar.set(offset);
          const answer = await request({
            method: 'PATCH',
            url,
            headers: { ...auth, 'upload-offset': String(offset) },
            file: {
              path: file.path,
              start: offset,
              end: file.size,
              onBytes: (n) => {
                moved += n;
                bar!.add(n);
              },
            },
          });
          offset = offsetHeader(answer.headers['upload-offset']) ?? offset;
          itemId = itemIdOf(answer.headers);
          conflict = null;
        }
        if (!itemId) {
          // Every byte sent and no item named: ask where the server stands, after a moment.
          if (failures >= BACKOFF_MS.length) throw new CliError(`the server at ${api.server} took every byte of ${file.label} but named no item`);
          await sleep(BACKOFF_MS[failures++]!, undefined, { signal }).catch(() => undefined);
          if (signal.aborted) throw signal.reason;
          resumed = true;
          continue;
        }
        await records.remove(key);
        bar?.finish(true);
        return await api.call(Item, 'GET', `/library/${encodeURIComponent(itemId)}`);
      } catch (err) {
        if (isInterruption(err, signal)) throw err;
        if (!(err instanceof TusFailure) || !err.passing) throw err;
        // Nothing answered yet in this command: the server is not there (or not at this address).
        if (err.status === 0 && !session.reached) throw err;
        // Bytes got through since the last failure: the count of tries starts again.
        if (moved > 0) {
          failures = 0;
          busyTries = 0;
          conflictAt = null;
        }
        if (err.status === 409) {
          // tus: the offset was not the server's (ask it with HEAD, at once). The same refusal again
          // at the server's own offset is something else (a name taken by a folder, say): final.
          if (!url || conflictAt === offset) throw err;
          conflictAt = offset;
          conflict = err;
          resumed = true;
          continue;
        }
        let wait: number;
        if (err.status === 423) {
          if (++busyTries > MAX_BUSY_TRIES) throw err;
          busy = true;
          wait = Math.min(Math.max(err.retryAfter ?? 1, 1), 5) * 1000;
          // Said once: the tries that follow are the same wait.
          if (busyTries === 1) ctx.out.warn(`${file.label}: ${err.message}; trying again every ${Math.round(wait / 1000)} s`);
        } else {
          // The request cut off may still hold the upload on the server for a moment (or a lock of a process that died).
          busy = true;
          if (failures >= BACKOFF_MS.length) throw err;
          wait = BACKOFF_MS[failures++]!;
          ctx.out.warn(`${file.label}: ${err.status === 0 ? `connection lost (${err.message})` : err.message}; resuming in ${Math.round(wait / 1000)} s`);
        }
        await sleep(wait, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) throw signal.reason;
        resumed = url !== null;
      }
    }
  } catch (err) {
    bar?.finish(false);
    // Worth saying only where running again helps: an interruption, or a server unreachable or busy throughout.
    const interrupted = isInterruption(err, signal);
    if (url && (interrupted || isPassingFailure(err)) && (await records.find(key))) {
      ctx.out.warn(`${file.label}: ${interrupted ? 'interrupted' : 'not finished'}; run the same command again to resume it from where the server stands`);
    }
    if (err instanceof TusFailure) {
      const hint = err.status === 401 && api.token ? ' (run "nondivy login" again)' : '';
      if (err.status === 0) {
        const text = session.reached ? `the connection to the Nondivy server at ${api.server} failed` : `cannot reach the Nondivy server at ${api.server}`;
        throw new CliError(`${text} (${err.message})`, 1, { cause: err });
      }
      throw new CliError(err.message + hint, 1, { cause: err });
    }
    throw err;
  }
}
