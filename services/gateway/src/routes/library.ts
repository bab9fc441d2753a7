import type { Multipart } from '@fastify/multipart';
import { Facets, Item, ItemId, ItemList, ItemPatch, SearchQuery, UploadFields } from '@nondivy/contracts';
import { AppError, badInput, tooLarge, unauthorized } from '@nondivy/errors';
import { decodeFormFilename, requireAcceptedFilename, type StagedUpload } from '@nondivy/storage';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { sendContent } from '../content-response.js';
import type { GatewayDeps } from '../deps.js';
import { actorOf } from '../plugins/authn.js';

export interface LibraryRouteOptions {
  deps: GatewayDeps;
  guestUpload: boolean;
  maxUploadBytes: number;
}

/** Room for multipart boundaries and the small text fields around the file. */
const MULTIPART_OVERHEAD = 256 * 1024;
const TEXT_FIELDS = new Set(['title', 'kind', 'tags', 'description']);

const IdParams = z.object({ id: ItemId });

const ContentQuery = z.strictObject({ download: z.enum(['0', '1']).optional() });

/**
 * Classifies a failure while reading an upload body, at this boundary: the multipart parser's own
 * errors (plain `Error`s from busboy: truncated body, missing boundary…) and a client that went away
 * are the client's fault (400); a file cut off by the size limit is 413; framework errors keep their
 * status; anything else stays as it is (a bug: 500, logged).
 */
function uploadError(err: unknown, truncated: boolean): unknown {
  if (truncated) return tooLarge('The file is larger than the upload limit');
  if (err instanceof AppError || typeof (err as { statusCode?: unknown })?.statusCode === 'number') return err;
  if (err instanceof Error && (err.constructor === Error || (err as NodeJS.ErrnoException).code === 'ECONNRESET' || err.name === 'AbortError')) {
    return badInput(`Malformed or incomplete multipart body (${err.message.slice(0, 120)})`);
  }
  return err;
}

/** The file part's bytes, with stream failures classified by `uploadError`. */
async function* fileBytes(file: NodeJS.ReadableStream & { truncated?: boolean }): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of file) yield chunk as Buffer;
  } catch (err) {
    throw uploadError(err, file.truncated === true);
  }
  if (file.truncated) throw tooLarge('The file is larger than the upload limit');
}

/**
 * Reads the multipart upload: exactly one `file` part plus optional text fields, in any order. The
 * file streams straight into the library (staged); it becomes an item only once every field is
 * read and valid. Anything else — an unknown part, a second file, a bad field — discards it. The
 * file name meets the rule every door shares (libs/storage filenames.ts) before a byte is stored: a
 * name the library would change is refused (400, `acceptedName` in the problem), as FTP refuses it.
 */
async function receiveUpload(req: FastifyRequest, deps: GatewayDeps): Promise<{ staged: StagedUpload; filename: string; mimetype: string; fields: UploadFields }> {
  let staged: StagedUpload | undefined;
  let filename = '';
  let mimetype = '';
  const raw: Record<string, string> = Object.create(null);
  try {
    for await (const part of req.parts() as AsyncIterable<Multipart>) {
      if (part.type === 'file') {
        if (part.fieldname !== 'file') throw badInput(`Unexpected file part "${part.fieldname.slice(0, 40)}"; send the file as "file"`);
        if (staged) throw badInput('Send exactly one file per upload');
        filename = requireAcceptedFilename(decodeFormFilename(part.filename));
        mimetype = part.mimetype;
        staged = await deps.library.stage(fileBytes(part.file));
      } else {
        if (!TEXT_FIELDS.has(part.fieldname)) throw badInput(`Unknown field "${part.fieldname.slice(0, 40)}"`);
        if (part.fieldname in raw) throw badInput(`Field "${part.fieldname}" given twice`);
        raw[part.fieldname] = String(part.value);
      }
    }
    if (!staged) throw badInput('No file part: send the file as the multipart field "file"');
    const parsed = UploadFields.safeParse({ ...raw });
    if (!parsed.success) {
      throw badInput('Invalid upload fields', {
        errors: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      });
    }
    return { staged, filename, mimetype, fields: parsed.data };
  } catch (err) {
    await staged?.discard();
    throw uploadError(err, false);
  }
}

/** The public library: upload, browse, fetch (with ranges), edit and delete. */
export const libraryRoutes: FastifyPluginAsyncZod<LibraryRouteOptions> = async (app, { deps, guestUpload, maxUploadBytes }) => {
  const { library } = deps;

  app.post(
    '/library',
    {
      schema: {
        tags: ['library'],
        summary: 'Upload a file (multipart/form-data: one "file" part plus optional title, kind, tags, description)',
        consumes: ['multipart/form-data'],
        response: { 201: Item },
      },
      // Refuse before reading the body: guests (unless allowed) and bodies announced as too large.
      onRequest: async (req) => {
        if (!guestUpload && !req.user) throw unauthorized('Log in to upload (guest uploads are disabled)');
        const length = Number(req.headers['content-length']);
        if (Number.isFinite(length) && length > maxUploadBytes + MULTIPART_OVERHEAD) {
          throw tooLarge(`The upload is larger than the limit of ${maxUploadBytes} bytes`);
        }
        if (!/^multipart\/form-data\s*;/i.test(req.headers['content-type'] ?? '')) throw badInput('Send the upload as multipart/form-data');
      },
    },
    async (req, reply) => {
      const { staged, filename, mimetype, fields } = await receiveUpload(req, deps);
      const item = await staged.commit({ ...fields, filename, contentType: mimetype }, actorOf(req));
      // The FTP path, as every later read of the item shows it (a duplicate's name differs from its file name).
      const name = await library.nameOf(item.id);
      const answer = name ? { ...item, path: `/library/${item.kind}/${name}` } : item;
      return reply.code(201).header('location', `/api/v1/library/${item.id}`).send(answer);
    },
  );

  app.get(
    '/library',
    {
      schema: {
        tags: ['library'],
        summary: 'Search and browse: every word of q must match (the last as a prefix), accents and case ignored; filters kind and tag (repeatable); sort relevance (default with q), new (default without), title, size, popular; paged by cursor',
        querystring: SearchQuery,
        response: { 200: ItemList },
      },
    },
    async (req) => {
      if (req.query.scope !== 'federated') return deps.catalog.search(req.query);
      // This site's answer and every linked site's first page, each bounded by the federation timeout.
      // Further pages (with a cursor) page through this site's results only.
      if (req.query.cursor) return { ...(await deps.catalog.search({ ...req.query, scope: 'local' })), sites: [] };
      const [local, remote] = await Promise.all([deps.catalog.search({ ...req.query, scope: 'local' }), deps.federation.search(req.query)]);
      return { ...local, items: [...local.items, ...remote.items], sites: remote.sites };
    },
  );

  app.get(
    '/library/facets',
    { schema: { tags: ['library'], summary: 'Counts per kind and the top tags, for the same q and filters as a search', querystring: SearchQuery, response: { 200: Facets } } },
    async (req) => deps.catalog.facets(req.query),
  );

  app.get('/library/:id', { schema: { tags: ['library'], summary: 'One item', params: IdParams, response: { 200: Item } } }, async (req) =>
    library.get(req.params.id),
  );

  app.route({
    method: ['GET', 'HEAD'],
    url: '/library/:id/content',
    // HEAD is handled here (not by fastify's generated HEAD route) so that it keeps the real length.
    exposeHeadRoute: false,
    schema: {
        tags: ['library'],
        summary: 'The bytes of an item: Range (206, multipart/byteranges), ETag (SHA-256), If-None-Match (304), If-Range',
        params: IdParams,
      querystring: ContentQuery,
    },
    handler: async (req, reply) => sendContent(deps, req, reply, req.params.id, req.query.download === '1'),
  });

  app.patch(
    '/library/:id',
    { schema: { tags: ['library'], summary: 'Edit an item (uploader or admin); a new filename meets the same rule as an upload\'s', params: IdParams, body: ItemPatch, response: { 200: Item } } },
    async (req) => {
      if (req.body.filename !== undefined) requireAcceptedFilename(req.body.filename);
      return library.update(req.params.id, req.body, actorOf(req));
    },
  );

  app.delete('/library/:id', { schema: { tags: ['library'], summary: 'Delete an item (uploader or admin)', params: IdParams } }, async (req, reply) => {
    await library.remove(req.params.id, actorOf(req));
    return reply.code(204).send();
  });
};
