import { TUS_VERSION } from '@nondivy/contracts';
import { sendProblem } from '@nondivy/http';
import type { FastifyInstance } from 'fastify';

/** A tus upload's address: its HEAD is how a client learns where to resume. */
const TUS_UPLOAD = /^\/api\/v1\/uploads\/[^/?]+(\?|$)/;

/**
 * While the gateway shuts down, a request that still arrives on an open connection gets 503 with
 * Retry-After and `Connection: close` (what fastify's return503OnClosing does, in our problem
 * documents) — except the HEAD of a tus upload, answered 423 Locked: tus clients (tus-js-client,
 * Uppy) take any other failed HEAD for a lost upload and start again from byte 0, while 423 means
 * "busy, ask again", so the upload resumes on the restarted (or another) gateway.
 */
export function answerWhileClosing(app: FastifyInstance) {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (req, reply) => {
    if (!closing) return;
    reply.header('connection', 'close').header('retry-after', '2');
    if (req.method === 'HEAD' && TUS_UPLOAD.test(req.url)) {
      return sendProblem(reply.header('tus-resumable', TUS_VERSION), 423, 'The server is shutting down: ask again in a moment');
    }
    return sendProblem(reply, 503, 'The server is shutting down: try again in a moment');
  });
}
