import { opendir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Item, UploadFields } from '@nondivy/contracts';
import type { Api } from '../api.js';
import { defineCommand } from '../command.js';
import type { Context } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { statOrNull } from '../files.js';
import { formatBytes, printable } from '../format.js';
import { multipartUpload } from '../multipart.js';
import { ProgressBar } from '../progress.js';

/** One file to send: where it is on disk, its size, and its relative path in a folder upload. */
interface LocalFile {
  path: string;
  size: number;
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
      if (stats?.isFile()) yield { path, size: stats.size, relative: rel };
    } else warn(`${path}: skipped (not a regular file or folder)`);
  }
}

/** Sends one file; the item it became. */
async function send(api: Api, ctx: Context, file: LocalFile, fields: Record<string, string | undefined>): Promise<Item> {
  const name = basename(file.path);
  const upload = multipartUpload({ ...fields, ...(file.relative ? { path: file.relative } : {}) }, { path: file.path, name, size: file.size });
  const bar = new ProgressBar(`uploading ${file.relative ?? name}`, file.size, ctx.progress);
  try {
    const item = await api.call(Item, 'POST', '/library', {
      body: upload.stream((n) => bar.add(n)),
      duplex: 'half',
      headers: { 'content-type': upload.contentType, 'content-length': String(upload.length) },
      timeoutMs: 0,
    });
    bar.finish(true);
    return item;
  } catch (err) {
    bar.finish(false);
    throw err;
  }
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

  A DIR is uploaded file by file with its folders, under its own name (inside --folder when given):
  "nondivy upload 'Kind of Blue' --kind audio --folder 'Miles Davis'" makes
  /library/audio/Miles Davis/Kind of Blue/…. Empty folders and symbolic links are left out. A file that
  fails is reported and the others are still sent; the exit status is then 1.`,
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

    if (stats.isFile()) {
      const item = await send(api, ctx, { path, size: stats.size }, sent);
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
        const item = await send(api, ctx, file, sent);
        items.push(item);
        ctx.out.line(`uploaded ${printable(file.relative!)} → ${printable(item.path ?? item.id)}`);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        failed.push({ file: file.relative!, error: err.message });
        ctx.out.warn(`${file.relative}: ${err.message}`);
      }
    }
    ctx.out.data({ items, failed });
    if (failed.length > 0) throw new CliError(`${failed.length} of ${items.length + failed.length} files were not uploaded`);
    ctx.out.line(`${items.length} files uploaded`);
  },
});
