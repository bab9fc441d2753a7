import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpClientLimits } from '@nondivy/config';
import { sendProblem } from '@nondivy/http';
import type { Logger } from '@nondivy/log';
import type { FastifyInstance } from 'fastify';

/**
 * Bodies their route streams (uploads, tus PATCH bodies, relayed files) rather than parsed whole. Only these may take
 * long: they are held to a rate (the progress window), everything else to a deadline.
 */
const STREAMED_BODY = /^(?:multipart\/form-data|application\/(?:offset\+)?octet-stream)\s*(?:;|$)/i;

/** A refused connection gets this long to send its request and read the 429, then it is closed. */
const REFUSED_GRACE_MS = 2000;

/** A cut connection gets this long to take its 408 before it is destroyed. */
const CUT_GRACE_MS = 1000;

/** Headers within the body deadline too; Node checks it every `connectionsCheckingInterval`. */
export function slowClientServerOptions(limits: HttpClientLimits): ServerOptions {
  return {
    headersTimeout: limits.bodyTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.bodyTimeoutMs / 4))),
  };
}

/** The address a connection counts against: IPv4-mapped IPv6 addresses as plain IPv4. */
function clientAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

interface Watch {
  req: IncomingMessage;
  res: ServerResponse;
  socket: Socket;
  streamed: boolean;
  started: number;
  lastTick: number;
  lastBytes: number;
  /** Bytes read and time spent waiting for them in the current progress window. */
  windowBytes: number;
  waitedMs: number;
}

function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = Number(req.headers['content-length']);
  return Number.isFinite(length) && length > 0;
}

/**
 * Cuts slow clients loose, so that a few hundred sockets trickling bytes cannot hold the gateway:
 * - headers must arrive within `bodyTimeoutMs` (Node's headersTimeout, see `slowClientServerOptions`);
 * - a body the gateway parses whole (logins, edits: anything but multipart or octet-stream) must
 *   arrive within `bodyTimeoutMs` of its headers;
 * - an upload or relayed file may take as long as it needs, but must deliver `progressMinBytes`
 *   per `progressWindowMs` of the time the gateway is waiting for it. Time during which the gateway
 *   is not reading (back-pressure from the blob store, a relay waiting for its receiver) does not
 *   count: a socket paused by Node is not the client's fault;
 * - one address holds at most `maxConnectionsPerIp` connections; the next ones are answered 429 and
 *   closed. Loopback is not exempt: on a LAN server a local process is no more trusted than a peer.
 * Responses are never timed: SSE streams, relayed downloads waiting for their sender and large
 * downloads to slow readers are left alone. A cut is answered 408 (problem+json) when no answer has
 * started, then the connection is closed; the route sees an aborted request and discards its work.
 */
export function guardSlowClients(app: FastifyInstance, limits: HttpClientLimits, log: Logger): void {
  const server = app.server;
  const open = new Map<string, number>();
  const refused = new WeakSet<Socket>();
  const watches = new Set<Watch>();

  server.on('connection', (socket: Socket) => {
    const address = clientAddress(socket);
    const count = (open.get(address) ?? 0) + 1;
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
    if (count > limits.maxConnectionsPerIp) {
      refused.add(socket);
      if (count === limits.maxConnectionsPerIp + 1) log.warn({ client: address, limit: limits.maxConnectionsPerIp }, 'too many connections from one address; refusing more');
      setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
    }
  });

  // First hook of all: a refused connection is answered before authentication or any route work.
  app.addHook('onRequest', async (req, reply) => {
    if (!refused.has(req.raw.socket)) return;
    reply.header('connection', 'close').header('retry-after', '5');
    return sendProblem(reply, 429, `Too many connections from your address (at most ${limits.maxConnectionsPerIp})`);
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!hasBody(req) || req.complete) return;
    const now = Date.now();
    const socket = req.socket;
    watches.add({
      req,
      res,
      socket,
      streamed: STREAMED_BODY.test(req.headers['content-type'] ?? ''),
      started: now,
      lastTick: now,
      lastBytes: socket.bytesRead,
      windowBytes: 0,
      waitedMs: 0,
    });
  });

  const cut = (w: Watch, reason: string) => {
    watches.delete(w);
    log.info({ client: clientAddress(w.socket), method: w.req.method, url: w.req.url?.split('?')[0]?.slice(0, 200), reason }, 'slow client cut off');
    // Destroying the request (not only the socket) makes whoever reads the body fail and clean up:
    // once the response is finished, Node no longer aborts the request when its socket closes.
    const abort = () => w.req.destroy(new Error(reason));
    if (w.res.headersSent || w.res.writableEnded) return abort();
    const destroy = setTimeout(abort, CUT_GRACE_MS);
    destroy.unref();
    const body = JSON.stringify({ type: 'about:blank', title: 'Request Timeout', status: 408, detail: reason });
    w.res.writeHead(408, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    w.res.end(body, () => {
      clearTimeout(destroy);
      abort();
    });
  };

  const check = () => {
    const now = Date.now();
    for (const w of watches) {
      if (w.req.complete || w.socket.destroyed) {
        watches.delete(w);
        continue;
      }
      if (!w.streamed) {
        if (now - w.started >= limits.bodyTimeoutMs) cut(w, `The request body did not arrive within ${limits.bodyTimeoutMs / 1000} s`);
        continue;
      }
      const bytes = w.socket.bytesRead;
      w.windowBytes += bytes - w.lastBytes;
      w.lastBytes = bytes;
      // Node pauses the socket when the route does not take the bytes: the gateway is the slow one.
      if (!w.socket.isPaused()) w.waitedMs += now - w.lastTick;
      w.lastTick = now;
      if (w.waitedMs < limits.progressWindowMs) continue;
      if (w.windowBytes < limits.progressMinBytes) {
        cut(w, `The body arrived too slowly (less than ${limits.progressMinBytes} bytes in ${limits.progressWindowMs / 1000} s)`);
      } else {
        w.windowBytes = 0;
        w.waitedMs = 0;
      }
    }
  };
  const tickMs = Math.max(100, Math.min(1000, Math.floor(Math.min(limits.bodyTimeoutMs, limits.progressWindowMs) / 5)));
  const timer = setInterval(check, tickMs);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
}
