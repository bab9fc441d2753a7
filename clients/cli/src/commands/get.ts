import { createHash } from 'node:crypto';
import { mkdir, open, rm, truncate } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Item, ItemId } from '@nondivy/contracts';
import { ApiError, problemMessage, type Api } from '../api.js';
import { defineCommand } from '../command.js';
import { CliError, isInterruption, UsageError } from '../errors.js';
import { hashFileInto, numberedName, partName, placeWithoutOverwrite, safeFilename, sha256File, statOrNull, writeHashed } from '../files.js';
import { formatBytes, printable } from '../format.js';
import { ProgressBar } from '../progress.js';
import { resolveSite } from '../sites.js';

/** Where a download goes: its folder and its name there (--out naming a folder is --dir). */
async function target(item: Item, out: string | undefined, dir: string | undefined): Promise<{ dir: string; name: string }> {
  if (out !== undefined && dir !== undefined) throw new UsageError('give --out or --dir, not both');
  if (out !== undefined) {
    if (out.endsWith('/') || (await statOrNull(out))?.isDirectory()) return { dir: out, name: safeFilename(item.filename, item.id) };
    return { dir: dirname(out), name: basename(out) };
  }
  return { dir: dir ?? '.', name: safeFilename(item.filename, item.id) };
}

/** An existing file (the name or a numbered variant) that already holds exactly this item, if any. */
async function alreadyThere(dir: string, name: string, item: Item): Promise<string | null> {
  for (let k = 0; k < 1000; k++) {
    const path = join(dir, numberedName(name, k));
    const stats = await statOrNull(path);
    if (!stats) return null;
    if (stats.isFile() && stats.size === item.size && (await sha256File(path)) === item.sha256) return path;
  }
  return null;
}

/**
 * Fetches the content (at the API path `content`) into `part`, resuming from what it holds (Range + If-Range on the item's
 * ETag, its quoted SHA-256); returns the SHA-256 of the whole file.
 */
async function download(api: Api, item: Item, content: string, part: string, progress: boolean, signal: AbortSignal): Promise<{ sha256: string; resumedFrom: number }> {
  const held = await statOrNull(part);
  let have = held?.size ?? 0;
  if (have > item.size) {
    await truncate(part, 0);
    have = 0;
  }
  const hash = createHash('sha256');
  if (held && have === item.size) {
    await hashFileInto(hash, part, undefined, signal);
    return { sha256: hash.digest('hex'), resumedFrom: have };
  }
  const headers: Record<string, string> = {};
  if (have > 0) {
    headers.range = `bytes=${have}-`;
    headers['if-range'] = `"${item.sha256}"`;
  }
  const res = await api.raw('GET', content, { headers, timeoutMs: 0 });
  if (res.status === 416 && have > 0) {
    // What we hold does not fit the item: start over.
    await res.body?.cancel().catch(() => undefined);
    await rm(part, { force: true });
    return download(api, item, content, part, progress, signal);
  }
  if (!res.ok) throw new ApiError(await problemMessage(res), res.status);
  let resumedFrom = 0;
  if (res.status === 206) {
    const start = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1];
    if (Number(start) !== have) {
      await res.body?.cancel().catch(() => undefined);
      throw new CliError(`the server resumed at the wrong place (${res.headers.get('content-range')})`);
    }
    resumedFrom = have;
    await hashFileInto(hash, part, undefined, signal);
  }
  const file = await open(part, resumedFrom > 0 ? 'a' : 'w');
  const bar = new ProgressBar(`downloading ${item.filename}`, item.size, progress, resumedFrom);
  try {
    if (res.body) await writeHashed(res.body, file, hash, { limit: item.size - resumedFrom, onBytes: (n) => bar.add(n), signal });
    await file.sync();
    bar.finish(true);
  } catch (err) {
    bar.finish(false);
    if (isInterruption(err, signal)) throw err;
    throw new CliError(`the download from ${api.server} broke off (${(err as Error).message}); run the same command again to resume`, 1, { cause: err });
  } finally {
    await file.close();
  }
  return { sha256: hash.digest('hex'), resumedFrom };
}

/**
 * What the user asked for: `ID`, `ID@SITE` or `ID --site SITE`. Ids are url-safe base64 (no "@"),
 * so the first "@" ends the id and the rest, "@" included, is the site.
 */
function parseTarget(raw: string, site: string | undefined): { id: string; site?: string } {
  const at = raw.indexOf('@');
  const id = at < 0 ? raw : raw.slice(0, at);
  const named = at < 0 ? undefined : raw.slice(at + 1);
  if (!ItemId.safeParse(id).success) throw new UsageError(`not an item id: ${id}`);
  if (named !== undefined && site !== undefined) throw new UsageError('give the site as ID@SITE or --site SITE, not both');
  const chosen = named ?? site;
  if (chosen !== undefined && chosen.trim() === '') throw new UsageError('the site is empty: ID@SITE names a linked site by name or id');
  return { id, site: chosen };
}

export const getCommand = defineCommand({
  name: 'get',
  summary: 'Download a library item, here or of a linked site (resumes an interrupted download, checks its SHA-256).',
  usage: `Usage: nondivy get ID[@SITE] [--site SITE] [--out PATH | --dir DIR]
       nondivy get [options] -- ID      (an ID that starts with "-")

  ID@SITE       an item of a linked site, fetched through this site (SITE: its name or id,
                as "nondivy search --all" shows them)
  --site SITE   the same as ID@SITE
  --out PATH    save as PATH
  --dir DIR     save in DIR under the item's file name (default: the current folder)

A partial download is kept as .<name>.<hash>.nondivy-part beside the target and resumed by running
the same command again. An existing file with other content is never overwritten: the download is
saved as "name (1).ext" and so on.`,
  examples: [
    'nondivy get 3kTq9mWZ2xYb7LpQaR4sVw # into the current folder',
    'nondivy get 3kTq9mWZ2xYb7LpQaR4sVw --dir ~/Books # the same again resumes where it stopped',
    'nondivy get 3kTq9mWZ2xYb7LpQaR4sVw@Riverside # an item of the linked site Riverside',
  ],
  options: { out: { type: 'string' }, dir: { type: 'string' }, site: { type: 'string' } },
  async run({ values, positionals }, ctx) {
    if (positionals.length !== 1) throw new UsageError('get takes exactly one item ID');
    const { id, site: siteArg } = parseTarget(positionals[0]!, values.site);
    const api = await ctx.api({ login: 'optional' });
    // An item of a linked site: its metadata and bytes through this gateway, under /sites/:siteId.
    const site = siteArg === undefined ? undefined : await resolveSite(api, siteArg);
    const base = site ? `/sites/${encodeURIComponent(site.siteId)}/library/${id}` : `/library/${id}`;
    const item = await api.call(Item, 'GET', base);
    const { dir, name } = await target(item, values.out, values.dir);
    await mkdir(dir, { recursive: true });

    const existing = await alreadyThere(dir, name, item);
    if (existing) {
      ctx.out.data({ id: item.id, site: site?.siteId, path: existing, size: item.size, sha256: item.sha256, downloaded: false });
      ctx.out.line(`already downloaded: ${printable(existing)} (${formatBytes(item.size)}, sha256 verified)`);
      return;
    }
    const part = join(dir, partName(name, item.sha256.slice(0, 16)));
    let result: { sha256: string; resumedFrom: number };
    try {
      result = await download(api, item, `${base}/content`, part, ctx.progress, ctx.signal);
    } catch (err) {
      if (isInterruption(err, ctx.signal)) ctx.out.warn('interrupted: run the same command again to resume the download');
      throw err;
    }
    const { sha256, resumedFrom } = result;
    if (sha256 !== item.sha256) {
      await rm(part, { force: true });
      throw new CliError(`the download of ${item.id} is corrupt (sha256 ${sha256}, expected ${item.sha256}): deleted it`);
    }
    const path = await placeWithoutOverwrite(part, dir, name);
    ctx.out.data({ id: item.id, site: site?.siteId, path, size: item.size, sha256, downloaded: true, resumedFrom });
    ctx.out.line(`saved ${printable(path)}${site ? ` from ${printable(site.name)}` : ''} (${formatBytes(item.size)}${resumedFrom > 0 ? `, resumed at ${formatBytes(resumedFrom)}` : ''}, sha256 verified)`);
  },
});
