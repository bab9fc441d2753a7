import { setTimeout as delay } from 'node:timers/promises';
import { TUS_EXTENSIONS, TUS_VERSION, UploadId, UploadMetadata, parseUploadMetadata, type UploadItemInput } from '@nondivy/contracts';
import { AppError, badInput, unauthorized } from '@nondivy/errors';
import { sendProblem } from '@nondivy/http';
import { requestBody } from '@nondivy/runtime';
import { requireAcceptedFilename, requireAcceptedFolder, UploadLockedError, type AppendResult, type ResumableResult, type ResumableUploads } from '@nondivy/storage';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { actorOf } from '../plugins/authn.js';

export interface UploadRouteOptions {
  uploads: ResumableUploads;
  guestUpload: boolean;
}

/** How long a DELETE waits for a request writing the upload to let go of it before answering 423. */
const TERMINATE_WAIT_MS = 5000;

/** The only body type of tus PATCH (and of POST with creation-with-upload). */
const OFFSET_OCTET_STREAM = 'application/offset+octet-stream';

/** A tus length or offset: digits only (no sign, no exponent), within a safe integer. */
const DIGITS = /^\d{1,15}$/;

/** Where the item a finished upload became is said (see the README's "Resumable uploads"). */
function itemHeaders(reply: FastifyReply, result: ResumableResult | undefined) {
  if (!result) return;
  reply.header('nondivy-item-id', result.itemId);
  if (result.path) reply.header('nondivy-item-path', encodeURI(result.path));
}

const httpDate = (ms: number) => new Date(ms).toUTCString();

function lengthHeader(req: FastifyRequest, name: 'upload-length' | 'upload-offset'): number {
  const raw = req.headers[name];
  const label = name === 'upload-length' ? 'Upload-Length' : 'Upload-Offset';
  if (raw === undefined) {
    if (name === 'upload-length' && req.headers['upload-defer-length'] !== undefined) throw badInput('Upload-Defer-Length is not supported: send Upload-Length');
    throw badInput(`${label} is required`);
  }
  if (typeof raw !== 'string' || !DIGITS.test(raw)) throw badInput(`${label} must be a whole number of bytes`);
  return Number(raw);
}

/** The request's announced body length, if any (chunked bodies have none). */
function contentLength(req: FastifyRequest): number | undefined {
  const raw = req.headers['content-length'];
  return raw === undefined ? undefined : Number(raw);
}

const hasBody = (req: FastifyRequest) => req.headers['transfer-encoding'] !== undefined || (contentLength(req) ?? 0) > 0;

const isOffsetStream = (req: FastifyRequest) => (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() === OFFSET_OCTET_STREAM;

/** Validates `Upload-Metadata` as strictly as POST /library's fields, into the item's fields. */
function readMetadata(header: string | undefined): UploadItemInput {
  const parsed = parseUploadMetadata(header ?? '');
  if ('error' in parsed) throw badInput(parsed.error);
  if (!parsed.values.filename) throw badInput('Upload-Metadata must carry the file name as "filename"');
  const fields = UploadMetadata.safeParse({ ...parsed.values });
  if (!fields.success) {
    throw badInput('Invalid Upload-Metadata', { errors: fields.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
  }
  const { filename, filetype, folder, ...rest } = fields.data;
  return {
    ...rest,
    filename: requireAcceptedFilename(filename),
    ...(folder !== undefined ? { folder: requireAcceptedFolder(folder) } : {}),
    ...(filetype !== undefined ? { contentType: filetype } : {}),
  };
}

/**
 * Resumable uploads with the tus 1.0 protocol (core, creation, creation-with-upload, termination,
 * expiration) at /api/v1/uploads. The routes read the tus headers, authorise and answer; the rules
 * (offsets, locks, caps, hashing, commit) are `ResumableUploads`' in libs/storage.
 *
 * Every answer carries `Tus-Resumable`; every request but OPTIONS must send it (412). Logins count
 * as for POST /library (guests only with NONDIVY_GUEST_UPLOAD), and an upload is its creator's: to
 * anyone else it does not exist (404). PATCH bodies are `application/offset+octet-stream` only
 * (415), streamed, never buffered whole.
 */
export const uploadRoutes: FastifyPluginAsync<UploadRouteOptions> = async (app, { uploads, guestUpload }) => {
  // The body stays a stream: the route reads it as it arrives.
  app.addContentTypeParser(OFFSET_OCTET_STREAM, (_req, payload, done) => done(null, payload));
  app.addHook('onRequest', async (req, reply) => {
    reply.header('tus-resumable', TUS_VERSION);
    if (req.method === 'OPTIONS') return;
    if (req.headers['tus-resumable'] !== TUS_VERSION) {
      reply.header('tus-version', TUS_VERSION);
      return sendProblem(reply, 412, `Send Tus-Resumable: ${TUS_VERSION} (the tus version this server speaks)`);
    }
    if (!guestUpload && !req.user) throw unauthorized('Log in to upload (guest uploads are disabled)');
  });
  // Shutting down: requests writing now checkpoint what they have and end, so clients resume elsewhere.
  app.addHook('preClose', async () => uploads.stopAll());

  /** Answers 423 for a busy upload (tus clients retry it); rethrows anything else. */
  const locked = (reply: FastifyReply, err: unknown) => {
    if (err instanceof UploadLockedError) return sendProblem(reply.header('retry-after', '1'), 423, err.message);
    throw err;
  };

  const idOf = (req: FastifyRequest<{ Params: { id: string } }>) => {
    if (!UploadId.safeParse(req.params.id).success) throw new AppError('not_found', 'No such upload');
    return req.params.id;
  };

  /** Reads the request body into the upload; its client going away ends it (what came is kept). */
  const appendBody = (req: FastifyRequest, reply: FastifyReply, id: string, offset: number): Promise<AppendResult> =>
    uploads.append(id, actorOf(req), offset, requestBody(req.raw, reply.raw), {
      contentLength: contentLength(req),
      stop: (reason) => req.raw.destroy(reason),
    });

  const options = async (_req: FastifyRequest, reply: FastifyReply) =>
    reply
      .code(204)
      .header('tus-version', TUS_VERSION)
      .header('tus-extension', TUS_EXTENSIONS.join(','))
      .header('tus-max-size', String(uploads.maxUploadBytes))
      .send();
  app.options('/uploads', { schema: { tags: ['uploads'], summary: 'tus: the protocol version, extensions and largest upload' } }, options);
  app.options('/uploads/:id', { schema: { hide: true } }, options);

  app.post(
    '/uploads',
    {
      schema: {
        tags: ['uploads'],
        summary:
          'tus creation: Upload-Length (required) and Upload-Metadata (filename required; filetype, title, kind, tags, description, folder) → 201 and Location; a body (application/offset+octet-stream) is the first bytes (creation-with-upload)',
      },
    },
    async (req, reply) => {
      const length = lengthHeader(req, 'upload-length');
      const metadata = typeof req.headers['upload-metadata'] === 'string' ? req.headers['upload-metadata'] : '';
      const input = readMetadata(metadata);
      const withBody = hasBody(req);
      if (withBody && !isOffsetStream(req)) return sendProblem(reply, 415, `Send the first bytes as ${OFFSET_OCTET_STREAM}`);
      const record = await uploads.create({ length, metadata, input, actor: actorOf(req) });
      const location = `${req.url.split('?')[0]!.replace(/\/+$/, '')}/${record.id}`;
      reply.header('location', location);
      let offset = record.offset;
      let expiresAt = record.expiresAt;
      let finished = record.finished;
      if (withBody) {
        try {
          ({ offset, expiresAt, finished } = await appendBody(req, reply, record.id, 0));
        } catch (err) {
          return locked(reply, err);
        }
      }
      itemHeaders(reply, finished);
      if (!finished) reply.header('upload-expires', httpDate(expiresAt));
      return reply.code(201).header('upload-offset', String(offset)).send();
    },
  );

  app.head<{ Params: { id: string } }>(
    '/uploads/:id',
    { schema: { tags: ['uploads'], summary: 'tus: where an upload stands (Upload-Offset; a finished one also names its item in Nondivy-Item-Id and Nondivy-Item-Path)' } },
    async (req, reply) => {
      let record: Awaited<ReturnType<ResumableUploads['get']>>;
      try {
        record = await uploads.get(idOf(req), actorOf(req));
      } catch (err) {
        // Redis or the server itself unavailable: 423, not 503, because tus clients take any other
        // failed HEAD for a lost upload and start again from byte 0; 423 makes them ask again.
        if (err instanceof AppError && err.kind === 'unavailable') return sendProblem(reply.header('retry-after', String(err.retryAfter ?? 2)), 423, err.message);
        throw err;
      }
      reply.header('cache-control', 'no-store').header('upload-offset', String(record.offset)).header('upload-length', String(record.length));
      if (record.metadata) reply.header('upload-metadata', record.metadata);
      if (!record.finished) reply.header('upload-expires', httpDate(record.expiresAt));
      itemHeaders(reply, record.finished);
      return reply.code(200).send();
    },
  );

  app.patch<{ Params: { id: string } }>(
    '/uploads/:id',
    { schema: { tags: ['uploads'], summary: 'tus: append bytes (application/offset+octet-stream) at Upload-Offset; the last byte makes the item (204 with Nondivy-Item-Id)' } },
    async (req, reply) => {
      const id = idOf(req);
      if (!isOffsetStream(req)) return sendProblem(reply, 415, `Send the bytes as ${OFFSET_OCTET_STREAM}`);
      const offset = lengthHeader(req, 'upload-offset');
      let result: AppendResult;
      try {
        result = await appendBody(req, reply, id, offset);
      } catch (err) {
        return locked(reply, err);
      }
      itemHeaders(reply, result.finished);
      if (!result.finished) reply.header('upload-expires', httpDate(result.expiresAt));
      return reply.code(204).header('upload-offset', String(result.offset)).send();
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/uploads/:id',
    { schema: { tags: ['uploads'], summary: 'tus termination: ends an upload and removes its bytes (an item it made stays)' } },
    async (req, reply) => {
      // A client that cancels aborts its PATCH and sends DELETE at once: the PATCH's request still
      // holds the upload's lock for the moment it takes to keep what came (its checkpoint). Wait for
      // that (the wish for the lock makes a quiet holder yield) rather than answer 423 to a cancel.
      const until = Date.now() + TERMINATE_WAIT_MS;
      for (;;) {
        try {
          await uploads.terminate(idOf(req), actorOf(req));
          break;
        } catch (err) {
          if (!(err instanceof UploadLockedError) || Date.now() >= until || req.raw.destroyed) return locked(reply, err);
          await delay(100);
        }
      }
      return reply.code(204).send();
    },
  );
};
