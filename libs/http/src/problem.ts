import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, httpStatusOf } from '@nondivy/errors';

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict', 411: 'Length Required', 413: 'Content Too Large', 415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

/** Sends an RFC 9457 problem document. */
export function sendProblem(reply: FastifyReply, status: number, detail?: string, extra: Record<string, unknown> = {}) {
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type: 'about:blank', title: TITLES[status] ?? 'Error', status, ...(detail ? { detail } : {}), ...extra });
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: { issue?: { path?: (string | number)[]; message?: string } };
}

/** Unread request bodies up to this size are drained (the connection stays usable). */
const DRAIN_LIMIT_BYTES = 8 * 1024 * 1024;

/**
 * An error answered before a large (or unsized) request body was read — a refused upload — closes
 * the connection, so the client stops sending instead of streaming gigabytes nobody reads. Smaller
 * bodies are drained by Node, so clients that insist on sending their whole body still get the answer.
 */
function closeIfBodyUnread(req: FastifyRequest, reply: FastifyReply) {
  if (req.raw.complete) return;
  const length = Number(req.headers['content-length']);
  if (!(Number.isFinite(length) && length <= DRAIN_LIMIT_BYTES)) reply.header('connection', 'close');
}

/**
 * The one error handler of every HTTP service: AppErrors map by kind; framework 4xx errors keep their
 * (safe) message; anything else is logged in full and answered with a generic 500.
 */
export function problemErrorHandler(err: FastifyError | AppError | Error, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof AppError) {
    const status = httpStatusOf[err.kind];
    if (err.retryAfter) reply.header('retry-after', String(err.retryAfter));
    if (status >= 500) req.log.warn({ err: { message: err.message, cause: (err.cause as Error)?.message } }, 'request failed: dependency unavailable');
    closeIfBodyUnread(req, reply);
    return sendProblem(reply, status, status === 500 ? 'Internal error' : err.message, err.details ?? {});
  }
  const fe = err as Omit<FastifyError, 'validation'> & { validation?: ValidationIssue[]; validationContext?: string };
  if (fe.validation) {
    const errors = fe.validation.map((v) => ({
      path: [fe.validationContext, ...(v.params?.issue?.path ?? (v.instancePath ?? '').split('/').filter(Boolean))].filter(Boolean).join('.'),
      message: v.params?.issue?.message ?? v.message ?? 'invalid',
    }));
    return sendProblem(reply, 400, `Invalid ${fe.validationContext ?? 'request'}`, { errors });
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    closeIfBodyUnread(req, reply);
    return sendProblem(reply, status, fe.message);
  }
  req.log.error({ err }, 'unhandled error');
  return sendProblem(reply, 500, 'Internal error');
}

export function notFoundHandler(req: FastifyRequest, reply: FastifyReply) {
  return sendProblem(reply, 404, `No route for ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}`);
}

/** The answer to a request Node's HTTP parser refused, by the parser's error code. */
function clientErrorProblem(code: string | undefined): { status: number; detail: string } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, detail: 'The request did not arrive in time' };
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, detail: 'The request headers are too large' };
  if (code === 'HPE_INVALID_URL') return { status: 400, detail: 'The request target is not a valid URL: characters outside ASCII must be percent-encoded' };
  return { status: 400, detail: 'The request is not valid HTTP/1.1' };
}

/**
 * Fastify's `clientErrorHandler`: a request Node's parser refuses before any route sees it (raw
 * non-ASCII bytes in the URL, a malformed header, headers too large) gets a problem document too,
 * instead of fastify's own JSON shape, and the connection is closed (its framing is unknown).
 */
export function problemClientErrorHandler(this: FastifyInstance, err: Error & { code?: string }, socket: Socket) {
  // A reset connection is gone: there is no one to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const { status, detail } = clientErrorProblem(err.code);
  this.log.debug({ code: err.code }, 'malformed request refused');
  if (socket.writable) {
    const body = JSON.stringify({ type: 'about:blank', title: TITLES[status], status, detail });
    socket.write(
      `HTTP/1.1 ${status} ${TITLES[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Fastify's `frameworkErrors`: errors fastify raises before routing (a URL that does not decode) go through the one error handler. */
export function problemFrameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  return problemErrorHandler(err, req, reply);
}
