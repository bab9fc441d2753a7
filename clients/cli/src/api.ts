import { Problem } from '@nondivy/contracts';
import type { z } from 'zod';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CliError, isInterruption } from './errors.js';

/** An error answer of the API: its problem `detail` (or title) is the message. */
export class ApiError extends CliError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type QueryValue = string | number | boolean | undefined | readonly string[];

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  /** A JSON body. */
  json?: unknown;
  /** Any other body (a stream needs `duplex: 'half'`). */
  body?: RequestInit['body'];
  duplex?: 'half';
  headers?: Record<string, string>;
  /** A device's token, sent as X-Device-Token (device-scoped calls send no login token). */
  deviceToken?: string;
  signal?: AbortSignal;
  /** Gives up after this long (default 30 s; 0 = never, for transfers of bytes). */
  timeoutMs?: number;
  /** Clean-up on the way out (unregister, cancel): still sent after an interruption. */
  cleanup?: boolean;
}

const DEFAULT_TIMEOUT_MS = 30_000;

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  EPIPE: 'connection closed',
};

/** The system error code behind a failed request (fetch wraps it in `cause`, sometimes in an AggregateError). */
export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'ERR_INVALID_STATE') return code;
    const nested = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(nested) && nested.length > 0) e = nested[0];
    else e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** "connection refused" and the like, for a failed connection. */
export function describeNetworkError(err: unknown): string {
  if ((err as Error)?.name === 'TimeoutError') return 'no answer in time';
  const code = errorCode(err);
  if (code && REASONS[code]) return REASONS[code];
  const cause = (err as { cause?: unknown })?.cause;
  const message = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
  return code ? `${message} (${code})` : message;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** A failed request as one message naming the server: could not connect, or lost the connection. */
export function networkFailure(server: string, err: unknown): CliError {
  const code = errorCode(err);
  const reason = describeNetworkError(err);
  const message = !code || CONNECT_CODES.has(code)
    ? `cannot reach the Nondivy server at ${server} (${reason})`
    : `the connection to the Nondivy server at ${server} failed (${reason})`;
  return new CliError(message, 1, { cause: err });
}

/** The one-line message of an error answer: its problem `detail`, else its title, else the status. */
export async function problemMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  return problemMessageOf(res.status, res.statusText, text);
}

export function problemMessageOf(status: number, statusText: string, text: string): string {
  try {
    const problem = Problem.safeParse(JSON.parse(text));
    if (problem.success) {
      const main = problem.data.detail || problem.data.title || `HTTP ${status}`;
      // "Invalid body" alone does not say what to fix: the fields and their rules do.
      const fields = (problem.data.errors ?? []).slice(0, 3).map((e) => (e.path ? `${e.path}: ${e.message}` : e.message));
      return fields.length ? `${main} (${fields.join('; ')})` : main;
    }
  } catch {
    // not JSON: fall through
  }
  const plain = text.trim().split('\n')[0]?.slice(0, 200);
  return plain && !plain.startsWith('<') ? `HTTP ${status}: ${plain}` : `HTTP ${status} ${statusText}`.trim();
}

function buildUrl(base: string, path: string, query?: Record<string, QueryValue>): string {
  const url = new URL(base + path);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) url.searchParams.append(key, v);
    else url.searchParams.set(key, String(value));
  }
  return url.href;
}

/**
 * The REST API of one site (`{server}/api/v1`). Every failure becomes one clear message: the
 * problem detail of an error answer, or which server could not be reached and why.
 */
export class Api {
  constructor(
    readonly server: string,
    readonly token: string | undefined,
    /** Aborted when the user interrupts: every request stops with it. */
    private readonly interrupt?: AbortSignal,
  ) {}

  url(path: string, query?: Record<string, QueryValue>): string {
    return buildUrl(`${this.server}/api/v1`, path, query);
  }

  /** Sends a request; answers of any status come back (network failures throw). */
  /**
   * A GET whose body is read as a Node stream (node:http rather than fetch: it takes about half the
   * CPU per byte, which matters for large relayed files). Resolves once the response head arrives.
   */
  download(path: string, opts: { deviceToken?: string; signal?: AbortSignal } = {}): Promise<IncomingMessage> {
    const headers: Record<string, string> = {};
    if (opts.deviceToken) headers['x-device-token'] = opts.deviceToken;
    else if (this.token) headers.authorization = `Bearer ${this.token}`;
    const url = new URL(this.url(path));
    const signals = [opts.signal, this.interrupt].filter((x): x is AbortSignal => x !== undefined);
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers, signal: signals.length ? AbortSignal.any(signals) : undefined }, resolve);
      req.once('error', (err) => {
        if (isInterruption(err, this.interrupt)) reject(this.interrupt!.reason);
        else if (opts.signal?.aborted) reject(opts.signal.reason);
        else reject(networkFailure(this.server, err));
      });
      req.end();
    });
  }

  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json;q=0.9, */*;q=0.1', ...opts.headers };
    if (opts.deviceToken) headers['x-device-token'] = opts.deviceToken;
    else if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    const signals = [opts.signal, opts.cleanup ? undefined : this.interrupt].filter((s): s is AbortSignal => s !== undefined);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (timeoutMs > 0) signals.push(AbortSignal.timeout(timeoutMs));
    const init: RequestInit & { duplex?: 'half' } = { method, headers, body, signal: AbortSignal.any(signals) };
    if (opts.duplex) {
      init.duplex = opts.duplex;
      // A streamed body cannot be replayed on a redirect anyway; and unless redirects are refused,
      // fetch clones the request for them, teeing the body, which then holds every byte sent in
      // memory (nodejs/undici#4058). With 'error' the body streams with bounded memory.
      init.redirect = 'error';
    }
    try {
      return await fetch(this.url(path, opts.query), init);
    } catch (err) {
      if (isInterruption(err, this.interrupt)) throw this.interrupt!.reason;
      if (opts.signal?.aborted) throw opts.signal.reason;
      throw networkFailure(this.server, err);
    }
  }

  /** Sends a request and fails on any answer but 2xx. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const res = await this.raw(method, path, opts);
    if (!res.ok) {
      const message = await problemMessage(res);
      // A login token that no longer works: say how to get a new one.
      const hint = res.status === 401 && this.token && !opts.deviceToken ? ' (run "nondivy login" again)' : '';
      throw new ApiError(message + hint, res.status);
    }
    return res;
  }

  /** A request whose answer is JSON of the given shape. */
  async call<S extends z.ZodType>(schema: S, method: string, path: string, opts: RequestOptions = {}): Promise<z.infer<S>> {
    const res = await this.request(method, path, opts);
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      if (isInterruption(err, this.interrupt)) throw this.interrupt!.reason;
      throw new CliError(`the server at ${this.server} sent an unreadable answer to ${method} ${path}`);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new CliError(`the server at ${this.server} answered ${method} ${path} with an unexpected shape (${issue?.path.join('.') || 'body'}: ${issue?.message})`);
    }
    return parsed.data;
  }

  /** A request whose answer's body does not matter. */
  async send(method: string, path: string, opts: RequestOptions = {}): Promise<void> {
    const res = await this.request(method, path, opts);
    await res.body?.cancel().catch(() => undefined);
  }
}
