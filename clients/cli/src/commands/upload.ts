import { basename } from 'node:path';
import { Item, UploadFields } from '@nondivy/contracts';
import { defineCommand } from '../command.js';
import { CliError, UsageError } from '../errors.js';
import { statOrNull } from '../files.js';
import { formatBytes, printable } from '../format.js';
import { multipartUpload } from '../multipart.js';
import { ProgressBar } from '../progress.js';

export const uploadCommand = defineCommand({
  name: 'upload',
  summary: 'Upload a file to the public library.',
  usage: `Usage: nondivy upload FILE [--kind K] [--tags a,b] [--title T] [--description D]

  --kind K          ebook, audio, video, image, document, software or other (default: guessed)
  --tags a,b        tags, comma separated
  --title T         the title (default: from the file name)
  --description D   a description`,
  examples: [
    'nondivy upload book.epub --kind ebook --tags scifi,classic --title Dune',
  ],
  options: {
    kind: { type: 'string' },
    tags: { type: 'string' },
    title: { type: 'string' },
    description: { type: 'string' },
  },
  async run({ values, positionals }, ctx) {
    if (positionals.length !== 1) throw new UsageError('upload takes exactly one FILE');
    const path = positionals[0]!;
    const fields = UploadFields.safeParse({ title: values.title, kind: values.kind, tags: values.tags, description: values.description });
    if (!fields.success) {
      const issue = fields.error.issues[0]!;
      throw new UsageError(`--${String(issue.path[0] ?? 'option')}: ${issue.message}`);
    }
    const stats = await statOrNull(path);
    if (!stats) throw new CliError(`${path}: no such file`);
    if (!stats.isFile()) throw new CliError(`${path}: not a regular file`);

    const api = await ctx.api({ login: 'optional' });
    const f = fields.data;
    const upload = multipartUpload(
      { title: f.title, kind: f.kind, tags: f.tags?.join(','), description: f.description },
      { path, name: basename(path), size: stats.size },
    );
    const bar = new ProgressBar(`uploading ${basename(path)}`, stats.size, ctx.progress);
    let item: Item;
    try {
      item = await api.call(Item, 'POST', '/library', {
        body: upload.stream((n) => bar.add(n)),
        duplex: 'half',
        headers: { 'content-type': upload.contentType, 'content-length': String(upload.length) },
        timeoutMs: 0,
      });
      bar.finish(true);
    } catch (err) {
      bar.finish(false);
      throw err;
    }
    ctx.out.data(item);
    ctx.out.line(`uploaded ${printable(item.title)}`);
    ctx.out.line(`  id:      ${item.id}`);
    ctx.out.line(`  kind:    ${item.kind}`);
    ctx.out.line(`  size:    ${formatBytes(item.size)} (${item.size} bytes)`);
    ctx.out.line(`  sha256:  ${item.sha256}`);
  },
});
