import { randomBytes } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Item } from '@nondivy/contracts';
import { contentDispositionFor, MAX_MULTIPART_RANGES, parseRange } from '@nondivy/http';
import { isInlineSafe, type ItemBody } from '@nondivy/storage';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayDeps } from './deps.js';

/** True when `If-None-Match` names this entity tag (weak comparison, RFC 9110 §13.1.2). */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

function contentHeaders(reply: FastifyReply, item: Item, download: boolean) {
  const disposition = download || !isInlineSafe(item.contentType) ? 'attachment' : 'inline';
  reply
    .header('etag', `"${item.sha256}"`)
    .header('accept-ranges', 'bytes')
    .header('last-modified', new Date(item.createdAt).toUTCString())
    .header('cache-control', 'no-cache')
    .header('content-disposition', contentDispositionFor(item.filename, disposition))
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "default-src 'none'; sandbox");
}

/** A piece of a response body: text as it is, an open body, or a range to open when its turn comes. */
type Part = string | ItemBody | (() => Promise<ItemBody>);

/**
 * Takes the response over from fastify once status and headers are final, and writes `parts` in
 * turn; the library's bodies send themselves (a local file through reused buffers, or the store's
 * stream). A failure midway can only cut the response short: it is logged and the connection
 * dropped, so the client sees an incomplete body rather than a wrong one.
 */
async function writeParts(req: FastifyRequest, reply: FastifyReply, parts: Part[]): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  try {
    res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    for (const part of parts) {
      if (typeof part === 'string') res.write(part);
      else await (typeof part === 'function' ? await part() : part).sendTo(res);
    }
    res.end();
  } catch (err) {
    req.log.info({ err: { message: (err as Error).message } }, 'download ended early');
    res.destroy();
  } finally {
    for (const part of parts) if (typeof part === 'object') await part.close();
  }
}

/**
 * Answers a request for an item's bytes: Range (one range, or several as multipart/byteranges),
 * ETag (the SHA-256), If-None-Match, If-Range, HEAD. The item is read once (`Library.read`); this
 * function only maps it to HTTP. Used by the public route and by linked sites.
 */
export async function sendContent(deps: GatewayDeps, req: FastifyRequest, reply: FastifyReply, id: string, download: boolean) {
  const { library } = deps;
  const content = await library.read(id);
  const { item } = content;
  const etag = `"${item.sha256}"`;
  contentHeaders(reply, item, download);
  if (etagMatches(req.headers['if-none-match'], etag)) return reply.code(304).send();

  const ifRange = req.headers['if-range'];
  const rangeHeader = ifRange === undefined || String(ifRange).trim() === etag ? req.headers.range : undefined;
  let ranges = parseRange(rangeHeader, item.size);
  if (ranges === 'unsatisfiable') {
    return reply.code(416).header('content-range', `bytes */${item.size}`).type('application/problem+json').send({
      type: 'about:blank', title: 'Range Not Satisfiable', status: 416, detail: `The item has ${item.size} bytes`,
    });
  }
  if (ranges && (ranges.length > MAX_MULTIPART_RANGES || (ranges.length === 1 && ranges[0]!.start === 0 && ranges[0]!.end === item.size - 1))) {
    ranges = null;
  }
  const head = req.method === 'HEAD';
  if (!head && (!ranges || ranges[0]!.start === 0)) {
    library.countDownload(item.id).catch((err) => req.log.warn({ err }, 'download not counted'));
  }

  if (!ranges || ranges.length === 1) {
    const r = ranges ? ranges[0]! : { start: 0, end: item.size - 1 };
    reply.code(ranges ? 206 : 200).type(item.contentType).header('content-length', String(r.end - r.start + 1));
    if (ranges) reply.header('content-range', `bytes ${r.start}-${r.end}/${item.size}`);
    if (head) return reply.send();
    // Opened before answering: a blob deleted a moment ago is still a clean 404, and once open a
    // concurrent delete cannot cut the download short.
    return writeParts(req, reply, [await content.open(r)]);
  }

  // multipart/byteranges: each range opened in turn, after the headers.
  const boundary = randomBytes(12).toString('hex');
  const heads = ranges.map(
    (r, i) => `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${item.contentType}\r\nContent-Range: bytes ${r.start}-${r.end}/${item.size}\r\n\r\n`,
  );
  const tail = `\r\n--${boundary}--\r\n`;
  const length = heads.reduce((n, h) => n + Buffer.byteLength(h), 0) + ranges.reduce((n, r) => n + r.end - r.start + 1, 0) + tail.length;
  reply.code(206).type(`multipart/byteranges; boundary=${boundary}`).header('content-length', String(length));
  if (head) return reply.send();
  return writeParts(req, reply, [...ranges.flatMap((r, i): Part[] => [heads[i]!, () => content.open(r)]), tail]);
}
