import type { Multipart } from '@fastify/multipart';
import { Facets, FolderList, FolderQuery, Item, ItemId, ItemList, ItemPatch, SearchQuery, UploadFields } from '@nondivy/contracts';
import { AppError, badInput, notFound, tooLarge, unauthorized } from '@nondivy/errors';
import { boundaryOf, formParts, MultipartError, type FormPart, type MultipartLimits } from '@nondivy/http';
import { directRequestBody, lingerAfter, requestBody, type LentChunks } from '@nondivy/runtime';
import { decodeFormFilename, requireAcceptedFilename, requireAcceptedFolder, type StagedUpload } from '@nondivy/storage';
import type { FastifyReply, FastifyRequest } from 'fastify';
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
/**
 * What a multipart upload may hold besides its file's bytes: both readers (ours off the socket,
 * @fastify/multipart's for other bodies, registered in app.ts) take these.
 */
export const UPLOAD_FORM_LIMITS: MultipartLimits = {
  headerBytes: 16 * 1024,
  headerPairs: 32,
  parts: 12,
  files: 1,
  fields: 8,
  fieldNameBytes: 64,
  fieldBytes: 16 * 1024,
};
const TEXT_FIELDS = new Set(['title', 'kind', 'tags', 'description', 'folder', 'path']);
const MULTIPART = /^multipart\/form-data\s*;/i;
/** A raw-body upload: the body is the file's bytes, its name and fields in the query string. */
const RAW_BODY = /^application\/octet-stream\s*(?:;|$)/i;

/**
 * The query of a raw-body upload: the multipart upload's fields (as strict: unknown or repeated
 * parameters are refused), plus the file's name (required: what the file part's name is in a
 * multipart upload) and its media type (optional: what the file part's Content-Type is there).
 */
const RawUploadQuery = z.strictObject({
  ...UploadFields.shape,
  filename: z.string().min(1, 'filename is required').max(4096),
  filetype: z.string().max(255).optional(),
});

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
  if (err instanceof MultipartError) {
    return err.status === 413 ? tooLarge(`The upload holds ${err.message}`) : badInput(`Malformed or incomplete multipart body (${err.message.slice(0, 120)})`);
  }
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

/** The raw body's bytes, with stream failures (a client that went away, a body cut short) classified by `uploadError`. */
async function* rawBytes(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) yield chunk as Buffer;
  } catch (err) {
    throw uploadError(err, false);
  }
}

/** The names of a relative path (`A/B/c.txt`): empty names (leading, trailing, doubled slashes) dropped, NFC. */
const namesOf = (path: string) => path.normalize('NFC').split('/').filter((n) => n.length > 0);

/**
 * Where an upload goes: its file name and its folder within the kind, from the name the file part
 * was sent with and the `folder` and `path` fields, each name meeting the rule every door shares
 * (libs/storage filenames.ts). Without `path`, the file part's name is the file name. With `path`
 * (a folder upload's relative path, `Album/CD1/01.flac`), its folders go after `folder` and its last
 * name is the file name; the file part must be sent under that name, or under the whole path (as a
 * browser's form submission of a folder does). `sent` is null while the file part has not come.
 */
function uploadTarget(sent: string | null, fields: { folder?: string; path?: string }): { filename: string | null; folder: string } {
  let folder = fields.folder ?? '';
  let filename: string | null = null;
  if (fields.path !== undefined) {
    const names = namesOf(fields.path);
    const leaf = names.pop();
    if (leaf === undefined) throw badInput('The path names no file: give the file\'s relative path, as "Album/CD1/01.flac"');
    if (sent !== null && sent.normalize('NFC') !== leaf && namesOf(sent).join('/') !== [...names, leaf].join('/')) {
      throw badInput(`The path's last name "${leaf.slice(0, 255)}" is not the name the file was sent with ("${sent.slice(0, 255)}")`);
    }
    filename = requireAcceptedFilename(leaf);
    folder = [folder, ...names].filter((f) => f.length > 0).join('/');
  } else if (sent !== null) {
    filename = requireAcceptedFilename(sent);
  }
  return { filename, folder: requireAcceptedFolder(folder) };
}

/**
 * The parts of a multipart upload. A body with a Content-Length over plain HTTP/1.1 (what curl -F,
 * browsers' forms and most clients send) is read off the socket into reused buffers and parsed
 * there (`formParts`: the file's bytes go to the library as views of those buffers, never copied by
 * JavaScript); any other body (chunked, TLS) through @fastify/multipart's stream parser, with the
 * same limits.
 */
async function uploadParts(req: FastifyRequest, reply: FastifyReply): Promise<{ parts: AsyncIterable<FormPart>; direct: LentChunks | null }> {
  const boundary = boundaryOf(req.headers['content-type'] ?? '');
  const direct = await directRequestBody(req.raw, reply.raw);
  return { parts: direct ? formParts(direct, boundary, UPLOAD_FORM_LIMITS) : streamedParts(req), direct };
}

/** @fastify/multipart's parts as `FormPart`s, its stream failures classified by `uploadError`. */
async function* streamedParts(req: FastifyRequest): AsyncGenerator<FormPart> {
  for await (const part of req.parts() as AsyncIterable<Multipart>) {
    if (part.type === 'file') yield { type: 'file', name: part.fieldname, filename: part.filename ?? '', mimetype: part.mimetype, bytes: fileBytes(part.file) };
    else {
      // Refused as the parser off the socket refuses them, rather than cut short silently.
      if (part.fieldnameTruncated) throw badInput(`Malformed or incomplete multipart body (a part's name is longer than ${UPLOAD_FORM_LIMITS.fieldNameBytes} bytes)`);
      if (part.valueTruncated) throw tooLarge(`The upload holds the field "${part.fieldname.slice(0, 40)}" larger than ${UPLOAD_FORM_LIMITS.fieldBytes} bytes`);
      // A field sent as application/json arrives parsed: its text again.
      yield { type: 'field', name: part.fieldname, value: typeof part.value === 'string' ? part.value : JSON.stringify(part.value), mimetype: part.mimetype };
    }
  }
}

/**
 * Reads the multipart upload: exactly one `file` part plus optional text fields, in any order. The
 * file streams straight into the library (staged); it becomes an item only once every field is
 * read and valid. Anything else — an unknown part, a second file, a bad field — discards it. The
 * names meet the rule every door shares (see `uploadTarget`) before a byte is stored when the fields
 * that decide them came first, else once they are read: a name or folder the library would change is
 * refused (400, `acceptedName` or `acceptedFolder` in the problem), as FTP refuses it.
 */
async function receiveUpload(req: FastifyRequest, reply: FastifyReply, deps: GatewayDeps): Promise<{ staged: StagedUpload; filename: string; folder: string; mimetype: string; fields: UploadFields }> {
  let staged: StagedUpload | undefined;
  let sent: string | null = null;
  let mimetype = '';
  const raw: Record<string, string> = Object.create(null);
  const parseFields = () => {
    const parsed = UploadFields.safeParse({ ...raw });
    if (!parsed.success) {
      throw badInput('Invalid upload fields', {
        errors: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      });
    }
    return parsed.data;
  };
  let direct: LentChunks | null = null;
  try {
    const body = await uploadParts(req, reply);
    direct = body.direct;
    for await (const part of body.parts) {
      if (part.type === 'file') {
        if (part.name !== 'file') throw badInput(`Unexpected file part "${part.name.slice(0, 40)}"; send the file as "file"`);
        if (staged) throw badInput('Send exactly one file per upload');
        sent = decodeFormFilename(part.filename);
        mimetype = part.mimetype;
        // What can be checked before the bytes are: everything, unless the name is a path whose
        // `path` field is still to come (it is then checked once the fields are read).
        const early = parseFields();
        if (early.path !== undefined || !/[\\/]/.test(sent)) uploadTarget(sent, early);
        staged = await deps.library.stage(part.bytes);
      } else {
        if (!TEXT_FIELDS.has(part.name)) throw badInput(`Unknown field "${part.name.slice(0, 40)}"`);
        if (part.name in raw) throw badInput(`Field "${part.name}" given twice`);
        raw[part.name] = part.value;
      }
    }
    if (!staged || sent === null) throw badInput('No file part: send the file as the multipart field "file"');
    const fields = parseFields();
    const { filename, folder } = uploadTarget(sent, fields);
    return { staged, filename: filename!, folder, mimetype, fields };
  } catch (err) {
    // Refused before the end of a body read off the socket: the rest is dropped and the connection
    // closed only once the client has it all or stops sending, so that it reads the answer.
    if (direct) lingerAfter(direct);
    await staged?.discard();
    throw uploadError(err, false);
  }
}

/**
 * Reads a raw-body upload: the fields from the query string, checked (names included, see
 * `uploadTarget`) before a byte is stored, then the body streamed into the library (staged) as the
 * file's bytes. A body cut short or over the limit discards what was stored.
 */
async function receiveRaw(req: FastifyRequest, reply: FastifyReply, deps: GatewayDeps): Promise<{ staged: StagedUpload; filename: string; folder: string; mimetype: string; fields: UploadFields }> {
  const query = { ...(req.query as Record<string, unknown>) };
  for (const [name, value] of Object.entries(query)) {
    if (Array.isArray(value)) throw badInput(`Field "${name.slice(0, 40)}" given twice`);
  }
  const parsed = RawUploadQuery.safeParse(query);
  if (!parsed.success) {
    throw badInput('Invalid upload fields', { errors: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
  }
  const { filename: sent, filetype, ...fields } = parsed.data;
  const { filename, folder } = uploadTarget(sent, fields);
  const staged = await deps.library.stage(rawBytes(requestBody(req.raw, reply.raw)));
  return { staged, filename: filename!, folder, mimetype: filetype ?? '', fields };
}

/** The public library: upload, browse, fetch (with ranges), edit and delete. */
export const libraryRoutes: FastifyPluginAsyncZod<LibraryRouteOptions> = async (app, { deps, guestUpload, maxUploadBytes }) => {
  const { library } = deps;
  // A raw-body upload's body stays a stream: the route reads it as it arrives.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  app.post(
    '/library',
    {
      schema: {
        tags: ['library'],
        summary:
          'Upload a file (multipart/form-data: one "file" part plus optional title, kind, tags, description, folder, path). folder: where within the kind ("Miles Davis/Kind of Blue"); path: the file\'s relative path in a folder upload ("Album/CD1/01.flac"), whose folders go after folder and whose last name is the file\'s. A refused name or folder is a 400 naming the accepted one (acceptedName, acceptedFolder). The answer carries the item\'s folder and path',
        description:
          'Or a raw-body upload (no multipart): Content-Type application/octet-stream, the body the file\'s bytes, and the fields in the query string: filename (required), filetype (the file\'s media type), title, kind, tags, description, folder, path — checked as strictly, before a byte is stored',
        consumes: ['multipart/form-data', 'application/octet-stream'],
        response: { 201: Item },
      },
      // Refuse before reading the body: guests (unless allowed) and bodies announced as too large.
      onRequest: async (req) => {
        if (!guestUpload && !req.user) throw unauthorized('Log in to upload (guest uploads are disabled)');
        const type = req.headers['content-type'] ?? '';
        const raw = RAW_BODY.test(type);
        const length = Number(req.headers['content-length']);
        if (Number.isFinite(length) && length > maxUploadBytes + (raw ? 0 : MULTIPART_OVERHEAD)) {
          throw tooLarge(`The upload is larger than the limit of ${maxUploadBytes} bytes`);
        }
        if (!raw && !MULTIPART.test(type)) throw badInput('Send the upload as multipart/form-data, or as application/octet-stream with the fields in the query string');
      },
    },
    async (req, reply) => {
      const { staged, filename, folder, mimetype, fields } = RAW_BODY.test(req.headers['content-type'] ?? '') ? await receiveRaw(req, reply, deps) : await receiveUpload(req, reply, deps);
      const { path: _relative, ...described } = fields;
      // The item carries its FTP path, as every later read of it shows it (a duplicate's name differs from its file name).
      const item = await staged.commit({ ...described, folder, filename, contentType: mimetype }, actorOf(req));
      return reply.code(201).header('location', `/api/v1/library/${item.id}`).send(item);
    },
  );

  app.get(
    '/library',
    {
      schema: {
        tags: ['library'],
        summary:
          'Search and browse: every word of q must match (the last as a prefix), accents and case ignored; filters kind and tag (repeatable), and with kind folder (the items directly in it; empty: the kind\'s root) or under (the items in it and below); sort relevance (default with q), new (default without), title, size, popular; paged by cursor',
        querystring: SearchQuery,
        response: { 200: ItemList },
      },
    },
    async (req) => {
      if (req.query.scope !== 'federated') return deps.catalog.search(req.query);
      // Folders are this site's own: a linked site's folders of the same name are not the same place.
      if (req.query.folder !== undefined || req.query.under !== undefined) throw badInput('folder and under filter this site\'s library only: leave out scope=federated');
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

  app.get(
    '/library/folders',
    {
      schema: {
        tags: ['library'],
        summary:
          'The folders directly under one folder of a kind (folder empty or absent: the kind\'s root), by name, each with how many items are in it or below; the folder\'s own count likewise; paged: cursor is the previous page\'s nextCursor (its last name). 404 for a folder that does not exist',
        querystring: FolderQuery,
        response: { 200: FolderList },
      },
    },
    async (req) => {
      const { kind, folder, limit, cursor } = req.query;
      if (!(await library.folderExists(kind, folder))) throw notFound(`No folder "${folder.slice(0, 200)}" in ${kind}`);
      const [page, items] = await Promise.all([library.subfolders(kind, folder, cursor ?? null, limit), library.folderItemCount(kind, folder)]);
      const pathOf = (f: string) => (f === '' ? `/library/${kind}` : `/library/${kind}/${f}`);
      const folders = page.folders.map(({ name, items: count }) => {
        const sub = folder === '' ? name : `${folder}/${name}`;
        return { name, folder: sub, path: pathOf(sub), items: count };
      });
      const last = folders[folders.length - 1];
      return { kind, folder, path: pathOf(folder), items, folders, nextCursor: page.more && last ? last.name : null };
    },
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
    {
      schema: {
        tags: ['library'],
        summary:
          'Edit an item (uploader or admin); a new filename meets the same rule as an upload\'s. folder moves the item within its kind (empty: the kind\'s root; folders on the way are made as an upload makes them); where its name is taken, it gets the suffixed path name an upload would (see path in the answer). 409 when a folder on the way is a file\'s name',
        params: IdParams,
        body: ItemPatch,
        response: { 200: Item },
      },
    },
    async (req) => {
      if (req.body.filename !== undefined) requireAcceptedFilename(req.body.filename);
      if (req.body.folder !== undefined) requireAcceptedFolder(req.body.folder);
      return library.update(req.params.id, req.body, actorOf(req));
    },
  );

  app.delete('/library/:id', { schema: { tags: ['library'], summary: 'Delete an item (uploader or admin)', params: IdParams } }, async (req, reply) => {
    await library.remove(req.params.id, actorOf(req));
    return reply.code(204).send();
  });
};
