import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { notFoundHandler, sendProblem } from '@nondivy/http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/**
 * The page's Content-Security-Policy: scripts, styles and fonts from this origin only (no inline
 * script, no eval), no plugins, no framing, no <base> games; images may also be blob:/data: (previews
 * of files picked for upload), media blob: too.
 */
export const APP_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

/** Paths that belong to the API and the operators, never to the web app: their 404s stay problem documents. */
const RESERVED = /^\/(api|docs|federation|healthz|readyz|metrics)(\/|$)/;

/** Everything the build may emit, by extension. Anything else is not served. */
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
  json: 'application/json',
  webmanifest: 'application/manifest+json',
  txt: 'text/plain; charset=utf-8',
  woff2: 'font/woff2',
  map: 'application/json',
};
const COMPRESSIBLE = new Set(['html', 'js', 'css', 'svg', 'json', 'webmanifest', 'txt', 'map']);

/** The built app may not grow past this in memory (it is a few hundred KB). */
const MAX_TOTAL_BYTES = 32 * 1024 * 1024;

interface StaticFile {
  type: string;
  body: Buffer;
  gzip: Buffer | null;
  etag: string;
  /** Hashed names under assets/ never change: cached for a year. */
  immutable: boolean;
}

/** Where the built app is: beside the bundle (dist/web, also in the image), or dist/web of the repository when run from source. */
export function findWebRoot(): string | null {
  for (const candidate of [new URL('./web/', import.meta.url), new URL('../../../../dist/web/', import.meta.url)]) {
    const dir = fileURLToPath(candidate);
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return null;
}

/** Reads every file of the built app into memory, each with its gzip form when that is smaller. */
export function loadWebFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
        continue;
      }
      const ext = entry.name.slice(entry.name.lastIndexOf('.') + 1).toLowerCase();
      const type = TYPES[ext];
      if (!entry.isFile() || !type) continue;
      total += statSync(full).size;
      if (total > MAX_TOTAL_BYTES) throw new Error(`the web app in ${root} is larger than ${MAX_TOTAL_BYTES} bytes`);
      const body = readFileSync(full);
      const packed = COMPRESSIBLE.has(ext) ? gzipSync(body, { level: 9 }) : null;
      const path = '/' + relative(root, full).split(sep).join('/');
      files.set(path, {
        type,
        body,
        gzip: packed && packed.length < body.length ? packed : null,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
        immutable: path.startsWith('/assets/'),
      });
    }
  };
  walk(root);
  return files;
}

function send(req: FastifyRequest, reply: FastifyReply, file: StaticFile) {
  reply
    .header('content-type', file.type)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    .header('etag', file.etag)
    .header('vary', 'accept-encoding');
  if (file.type.startsWith('text/html')) {
    reply.header('content-security-policy', APP_CSP).header('x-frame-options', 'DENY');
  }
  if (req.headers['if-none-match'] === file.etag) return reply.code(304).send();
  const gzip = file.gzip && /\bgzip\b/i.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? file.gzip! : file.body;
  if (gzip) reply.header('content-encoding', 'gzip');
  reply.header('content-length', body.length);
  return reply.code(200).send(req.method === 'HEAD' ? undefined : body);
}

/**
 * Serves the web app (clients/web, built into dist/web) at `/`: its files by name, and index.html
 * for any other GET of a path outside the API, so the app's own addresses (/item/ID, /upload…)
 * load it too. API, docs and federation paths keep their problem+json 404s. Without a built app,
 * `/` says how to build it (503) instead of a bare 404.
 */
export const webApp = fp(
  async (app: FastifyInstance, opts: { root: string | null }) => {
    const files = opts.root ? loadWebFiles(opts.root) : new Map<string, StaticFile>();
    const index = files.get('/index.html');
    if (!index) app.log.warn('the web app is not built (dist/web is missing): run `npm run build`');

    const serveIndex = (req: FastifyRequest, reply: FastifyReply) =>
      index ? send(req, reply, index) : sendProblem(reply, 503, 'The web app is not built on this server: run `npm run build`, then restart it');

    app.route({ method: ['GET', 'HEAD'], url: '/', exposeHeadRoute: false, schema: { hide: true }, handler: serveIndex });

    app.setNotFoundHandler((req, reply) => {
      const path = req.url.split('?')[0]!;
      if ((req.method !== 'GET' && req.method !== 'HEAD') || RESERVED.test(path)) return notFoundHandler(req, reply);
      const file = files.get(path);
      if (file) return send(req, reply, file);
      // A missing file (a name with an extension, an old hashed asset) is a 404, not the app.
      if (/\.[A-Za-z0-9]+$/.test(path) || path.startsWith('/assets/')) return notFoundHandler(req, reply);
      return serveIndex(req, reply);
    });
  },
  { name: 'nondivy-web-app', fastify: '5.x' },
);
