import { opendir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Item, UploadFields } from '@nondivy/contracts';
import type { Api } from '../api.js';
import { defineCommand } from '../command.js';
import type { Context } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { statOrNull } from '../files.js';
import { formatBytes, printable } from '../format.js';
import { isPassingFailure, sendResumable, type UploadSession } from '../resumable-upload.js';

/** One file to send: where it is on disk, its size, and its relative path in a folder upload. */
interface LocalFile {
  path: string;
  size: number;
  mtimeMs: number;
  /** `Album/CD1/01.flac` (with `/`), for a file found in a folder; absent for a single file. */
  relative?: string;
}

/**
 * The regular files under `dir`, by name, each with its path relative to `dir`'s parent (so the
 * folder's own name comes first, as a browser's folder upload sends it). Symbolic links and special
 * files are left out (a link could loop or lead outside the folder), each with a warning.
 */
async function* filesUnder(dir: string, relative: string, warn: (text: string) => void): AsyncGenerator<LocalFile> {
  const entries = [];
  for await (const entry of await opendir(dir)) entries.push(entry);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    const rel = `${relative}/${entry.name}`;
    if (entry.isDirectory()) yield* filesUnder(path, rel, warn);
    else if (entry.isFile()) {
      const stats = await statOrNull(path);
      if (stats?.isFile()) yield { path, size: stats.size, mtimeMs: stats.mtimeMs, relative: rel };
    } else warn(`${path}: skipped (not a regular file or folder)`);
  }
}

/**
 * Sends one file over tus (resumable: see resumable-upload.ts); the item it became. A file of a
 * folder upload (`Album/CD1/01.flac`) goes into --folder followed by its own folders, under its own
 * name, as POST /library places a multipart upload with a `path` field.
 */
async function send(api: Api, ctx: Context, session: UploadSession, file: LocalFile, fields: Record<string, string | undefined>): Promise<Item> {
  const names = file.relative ? file.relative.normalize('NFC').split('/').filter((n) => n.length > 0) : [];
  const filename = names.pop() ?? basename(file.path);
  const folder = [fields.folder ?? '', ...names].filter((n) => n.length > 0).join('/');
  const resumable = {
    path: resolve(file.path),
    size: file.size,
    mtimeMs: file.mtimeMs,
    label: file.relative ?? basename(file.path),
    metadata: { ...fields, filename, folder: folder || undefined },
  };
  return sendResumable(api, ctx, resumable, session);
}

export const uploadCommand = defineCommand({
  name: 'upload',
  summary: 'Upload a file, or a folder with everything in it, to the public library.',
  usage: `Usage: nondivy upload FILE|DIR [--folder F] [--kind K] [--tags a,b] [--title T] [--description D]

  --folder F        the folder within the kind to put it in ("Miles Davis/Kind of Blue"; default: the kind's root)
  --kind K          ebook, audio, video, image, document, software or other (default: guessed)
  --tags a,b        tags, comma separated
  --title T         the title (default: from the file name; not with a DIR)
  --description D   a description

  Uploads are resumable: run the same command again after an interruption (Ctrl-C, a dropped
  network, a server restart) and each unfinished file continues from where the server stands. What
  that needs is kept in $XDG_STATE_HOME/nondivy/uploads (~/.local/state/nondivy/uploads) until done.

  A DIR is uploaded file by file with its folders, under its own name (inside --folder when given):
  "nondivy upload 'Kind of Blue' --kind audio --folder 'Miles Davis'" makes
  /library/audio/Miles Davis/Kind of Blue/…. Empty folders and symbolic links are left out. A file that
  fails is reported and the others are still sent; the exit status is then 1. When the server cannot
  be reached through every retry, the upload stops there.`,
  examples: [
    'nondivy upload book.epub --kind ebook --tags scifi,classic --title Dune',
    "nondivy upload 'Kind of Blue' --kind audio --folder 'Miles Davis'",
  ],
  options: {
    folder: { type: 'string' },
    kind: { type: 'string' },
    tags: { type: 'string' },
    title: { type: 'string' },
    description: { type: 'string' },
  },
  async run({ values, positionals }, ctx) {
    if (positionals.length !== 1) throw new UsageError('upload takes exactly one FILE or DIR');
    const path = positionals[0]!;
    const fields = UploadFields.safeParse({ title: values.title, kind: values.kind, tags: values.tags, description: values.description, folder: values.folder });
    if (!fields.success) {
      const issue = fields.error.issues[0]!;
      throw new UsageError(`--${String(issue.path[0] ?? 'option')}: ${issue.message}`);
    }
    const stats = await statOrNull(path);
    if (!stats) throw new CliError(`${path}: no such file or folder`);
    if (!stats.isFile() && !stats.isDirectory()) throw new CliError(`${path}: not a regular file or folder`);
    if (stats.isDirectory() && fields.data.title !== undefined) throw new UsageError('--title names one file: leave it out with a DIR');

    const api = await ctx.api({ login: 'optional' });
    const f = fields.data;
    const sent = { title: f.title, kind: f.kind, tags: f.tags?.join(','), description: f.description, folder: values.folder };
    const session: UploadSession = { reached: false };

    if (stats.isFile()) {
      const item = await send(api, ctx, session, { path, size: stats.size, mtimeMs: stats.mtimeMs }, sent);
      ctx.out.data(item);
      ctx.out.line(`uploaded ${printable(item.title)}`);
      ctx.out.line(`  id:      ${item.id}`);
      ctx.out.line(`  kind:    ${item.kind}`);
      if (item.path) ctx.out.line(`  path:    ${printable(item.path)}`);
      ctx.out.line(`  size:    ${formatBytes(item.size)} (${item.size} bytes)`);
      ctx.out.line(`  sha256:  ${item.sha256}`);
      return;
    }

    const items: Item[] = [];
    const failed: { file: string; error: string }[] = [];
    for await (const file of filesUnder(path, basename(resolve(path)), (text) => ctx.out.warn(text))) {
      try {
        const item = await send(api, ctx, session, file, sent);
        items.push(item);
        ctx.out.line(`uploaded ${printable(file.relative!)} → ${printable(item.path ?? item.id)}`);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        // The server out of reach (or busy) through every retry: the files after it would fare the same.
        if (isPassingFailure(err)) {
          ctx.out.data({ items, failed: [...failed, { file: file.relative!, error: err.message }] });
          throw new CliError(`${err.message}: stopped after ${items.length} uploaded file${items.length === 1 ? '' : 's'}`, 1, { cause: err });
        }
        failed.push({ file: file.relative!, error: err.message });
        ctx.out.warn(`${file.relative}: ${err.message}`);
      }
    }
    ctx.out.data({ items, failed });
    if (failed.length > 0) throw new CliError(`${failed.length} of ${items.length + failed.length} files were not uploaded`);
    ctx.out.line(`${items.length} files uploaded`);
  },
});
