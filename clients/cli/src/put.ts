import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeNetworkError, errorCode, problemMessageOf } from './api.js';

/** Why a PUT failed: no connection at all, an error answer, or the connection/file failing midway. */
export type PutFailureKind = 'connect' | 'http' | 'io';

export class PutFailure extends Error {
  constructor(
    message: string,
    readonly kind: PutFailureKind,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'PutFailure';
  }
}

export interface PutFileOptions {
  url: string;
  headers: Record<string, string>;
  path: string;
  /** Sent as Content-Length; the file must have exactly this many bytes. */
  size: number;
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
  /** Fails with kind 'connect' when no connection is made within this long. */
  connectTimeoutMs?: number;
}

const MAX_ERROR_BODY = 64 * 1024;

/**
 * PUTs a file, streamed from disk with back-pressure, and resolves on a 2xx answer. Plain
 * `node:http` rather than fetch, to tell "could not connect" (a direct route that is not
 * reachable) from a failure once connected.
 */
export function putFile(o: PutFileOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const url = new URL(o.url);
    const transport = url.protocol === 'https:' ? https : http;
    let connected = false;
    let settled = false;
    const settle = (err?: PutFailure) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      if (err) reject(err);
      else resolve();
    };
    const req = transport.request(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', ...o.headers, 'content-length': String(o.size) },
      agent: false,
      signal: o.signal,
    });
    const connectTimer = o.connectTimeoutMs
      ? setTimeout(() => {
          if (!connected) req.destroy(Object.assign(new Error('no connection in time'), { code: 'ETIMEDOUT' }));
        }, o.connectTimeoutMs)
      : undefined;

    req.on('socket', (socket) => {
      const onConnect = () => {
        connected = true;
        clearTimeout(connectTimer);
      };
      if ((socket as { connecting?: boolean }).connecting) socket.once('connect', onConnect);
      else onConnect();
    });

    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        if (length < MAX_ERROR_BODY) chunks.push(chunk);
        length += chunk.length;
      });
      res.on('error', () => undefined);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return settle();
        settle(new PutFailure(problemMessageOf(status, res.statusMessage ?? '', Buffer.concat(chunks).toString('utf8')), 'http', status));
      });
      // An error answer may come before the whole body was sent: stop sending.
      if ((res.statusCode ?? 0) >= 300) res.once('end', () => req.destroy());
    });

    // Which side failed first: the file (its error then destroys the request) or the connection.
    let failed: 'file' | 'net' | undefined;
    const file = createReadStream(o.path, { highWaterMark: 256 * 1024 });
    file.once('error', () => {
      failed ??= 'file';
    });

    req.on('error', (err) => {
      failed ??= 'net';
      if (settled) return;
      if (o.signal?.aborted) {
        settled = true;
        clearTimeout(connectTimer);
        reject(o.signal.reason);
        return;
      }
      if (failed === 'file') return settle(new PutFailure(`cannot read ${o.path}: ${err.message}`, 'io', undefined, errorCode(err)));
      // An answer may be on its way (an early 413, say): when it comes, it is what counts.
      const code = errorCode(err);
      setImmediate(() => settle(new PutFailure(describeNetworkError(err), connected ? 'io' : 'connect', undefined, code)));
    });

    let sent = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        if (sent > o.size) return cb(new Error(`${o.path} changed: it has more than ${o.size} bytes now`));
        o.onBytes?.(chunk.length);
        cb(null, chunk);
      },
    });
    // Failures surface as the request's 'error' (pipeline destroys it with the cause).
    pipeline(file, counter, req).then(
      () => {
        if (sent !== o.size) req.destroy(new Error(`${o.path} changed: it has ${sent} bytes now, ${o.size} were offered`));
      },
      () => undefined,
    );
  });
}
