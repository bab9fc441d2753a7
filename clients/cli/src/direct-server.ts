import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One direct PUT, routed and parsed: what the receiver decides on. */
export interface DirectPut {
  transferId: string;
  n: number;
  /** The bearer token sent, if any. */
  token: string | undefined;
  req: IncomingMessage;
}

/** The answer to a direct PUT: 2xx, or a problem status with its detail. */
export interface DirectAnswer {
  status: number;
  detail?: string;
}

const FILE_PATH = /^\/transfers\/([A-Za-z0-9_-]{22})\/files\/(\d{1,6})$/;
const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
};

function answer(req: IncomingMessage, res: ServerResponse, a: DirectAnswer) {
  if (res.headersSent) return;
  // An answer before the whole body was read closes the connection: the rest is not wanted.
  if (!req.complete) res.setHeader('connection', 'close');
  if (a.status < 300) {
    res.writeHead(a.status).end();
    return;
  }
  const body = JSON.stringify({ type: 'about:blank', title: TITLES[a.status] ?? 'Error', status: a.status, detail: a.detail });
  res.writeHead(a.status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/**
 * The receiver's direct endpoint: `PUT /transfers/:id/files/:n`, nothing else. Routing and the
 * HTTP details live here; who may send what is `onPut`'s decision.
 */
export class DirectServer {
  private readonly server: http.Server;

  constructor(onPut: (put: DirectPut) => Promise<DirectAnswer>) {
    this.server = http.createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, (req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      const m = FILE_PATH.exec(path);
      if (!m) return answer(req, res, { status: 404, detail: 'Nothing here' });
      if (req.method !== 'PUT') {
        res.setHeader('allow', 'PUT');
        return answer(req, res, { status: 405, detail: 'Only PUT' });
      }
      const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      onPut({ transferId: m[1]!, n: Number(m[2]), token, req }).then(
        (a) => answer(req, res, a),
        (err: unknown) => answer(req, res, { status: 500, detail: err instanceof Error ? err.message : String(err) }),
      );
    });
    // A sender silent for two minutes is gone: its request fails and the partial file is deleted.
    this.server.timeout = 120_000;
  }

  /** Listens; resolves to the port in use. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
