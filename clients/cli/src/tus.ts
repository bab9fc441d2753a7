import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeNetworkError, errorCode, problemMessageOf } from './api.js';

/**
 * A small tus 1.0 client (core, creation, termination) for `nondivy upload`, on node:http like
 * put.ts: PATCH bodies stream from disk at the server's offset with back-pressure (a read stream
 * opened at that byte), so memory stays flat and nothing is read twice. tus-js-client would work in
 * Node too, but its own resume store (one JSON file of fingerprints) is not the per-file record the
 * CLI keeps (upload-records.ts), and this is all the protocol the CLI needs.
 */
export const TUS_VERSION = '1.0.0';

/** No answer and no byte moving for this long: the connection is taken for dead and dropped. */
const IDLE_TIMEOUT_MS = 60_000;
const MAX_BODY = 64 * 1024;

/** A tus request that failed: an error answer (`status`), or the connection (`status` 0). */
export class TusFailure extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
    /** The problem document of an error answer, when it was one. */
    readonly problem?: Record<string, unknown>,
    /** Retry-After of the answer, in seconds, when it gave one. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'TusFailure';
  }

  /** Worth another try from the server's offset: no connection, a busy or restarting server, an upload still held by an earlier request. */
  get passing(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 409 || this.status === 423 || this.status >= 500;
  }
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
}

export interface TusRequest {
  method: 'POST' | 'HEAD' | 'PATCH' | 'DELETE';
  url: string;
  headers: Record<string, string>;
  /** A PATCH body: the file's bytes from `start` to `end` (exclusive); a PATCH without it is empty. */
  file?: { path: string; start: number; end: number; onBytes?: (n: number) => void };
  signal?: AbortSignal;
}

/** Sends one tus request; resolves with any 2xx answer, fails with a TusFailure otherwise. */
export function tusRequest(o: TusRequest): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const url = new URL(o.url);
    const transport = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { 'tus-resumable': TUS_VERSION, accept: 'application/json, application/problem+json;q=0.9', ...o.headers };
    if (o.method === 'PATCH') headers['content-type'] = 'application/offset+octet-stream';
    if (o.file) headers['content-length'] = String(o.file.end - o.file.start);
    else if (o.method !== 'HEAD') headers['content-length'] = '0';
    let settled = false;
    const settle = (err: Error | null, answer?: Answer) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(answer!);
    };
    const req = transport.request(url, { method: o.method, headers, agent: false, signal: o.signal });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'ETIMEDOUT' })));

    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        if (length < MAX_BODY) chunks.push(chunk);
        length += chunk.length;
      });
      res.on('error', () => undefined);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return settle(null, { status, headers: res.headers });
        const text = Buffer.concat(chunks).toString('utf8');
        let problem: Record<string, unknown> | undefined;
        try {
          problem = JSON.parse(text) as Record<string, unknown>;
        } catch {
          problem = undefined;
        }
        const retryAfter = /^\d{1,6}$/.test(String(res.headers['retry-after'] ?? '')) ? Number(res.headers['retry-after']) : undefined;
        settle(new TusFailure(problemMessageOf(status, res.statusMessage ?? '', text), status, undefined, problem, retryAfter));
      });
      // An error answer may come before the whole body was sent: stop sending.
      if ((res.statusCode ?? 0) >= 300) res.once('end', () => req.destroy());
    });

    let fileFailed: Error | undefined;
    req.on('error', (err) => {
      if (settled) return;
      if (o.signal?.aborted) return settle(o.signal.reason as Error);
      if (fileFailed) return settle(new TusFailure(`cannot read ${o.file!.path}: ${fileFailed.message}`, -1));
      // An answer may be on its way (an early 413, say): when it comes, it is what counts.
      const code = errorCode(err);
      setImmediate(() => settle(new TusFailure(describeNetworkError(err), 0, code)));
    });

    if (!o.file) {
      req.end();
      return;
    }
    const { path, start, end, onBytes } = o.file;
    const body = createReadStream(path, { start, highWaterMark: 256 * 1024 });
    body.once('error', (err) => (fileFailed ??= err));
    let sent = 0;
    const want = end - start;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        if (sent > want) {
          fileFailed ??= new Error(`it has more than ${end} bytes now (it changed)`);
          return cb(fileFailed);
        }
        onBytes?.(chunk.length);
        cb(null, chunk);
      },
    });
    pipeline(body, counter, req).then(
      () => {
        if (sent !== want) {
          fileFailed ??= new Error(`it has ${start + sent} bytes now, ${end} were announced (it changed)`);
          req.destroy(fileFailed);
        }
      },
      () => undefined,
    );
  });
}

/** tus `Upload-Metadata`: `key base64(value)` pairs, comma separated, empty values left out. */
export function encodeMetadata(values: Record<string, string | undefined>): string {
  return Object.entries(values)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .map(([k, v]) => `${k} ${Buffer.from(v, 'utf8').toString('base64')}`)
    .join(',');
}

/** A whole number of bytes from a tus header, or null. */
export function offsetHeader(value: string | string[] | undefined): number | null {
  return typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : null;
}

/** `Nondivy-Item-Id` of a finished upload's answer, or null. */
export function itemIdOf(headers: http.IncomingHttpHeaders): string | null {
  const id = headers['nondivy-item-id'];
  return typeof id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : null;
}
