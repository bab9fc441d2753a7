// The contracts' browser-safe modules, by file: the package's index also carries server-only
// helpers (Node's Buffer), which have no place in the page.
import { SessionResponse, SessionState, User } from '../../../libs/contracts/src/auth.js';
import { Facets, FolderList, Item, ItemList, type ItemKind } from '../../../libs/contracts/src/library.js';
import { z } from 'zod';

// The page's CSP forbids eval: zod must not try to compile parsers with `new Function` (it would
// be refused and logged as a violation).
z.config({ jitless: true });

export { Item, ItemList, Facets, FolderList, SessionResponse, SessionState, User };
export type { ItemKind };

export const API = '/api/v1';

/** A refused or failed request, with words a person can act on. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problem: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Plain words for each refusal, completed by the server's own detail. */
export function explain(status: number, detail: string | undefined, retryAfter?: string | null): string {
  const d = detail ? ` ${detail.replace(/\.?$/, '.')}` : '';
  switch (status) {
    case 0:
      return 'The server cannot be reached. Check the network and try again.';
    case 401:
      return `Not signed in, or the session has ended: log in again.${d && d !== ' Authentication required.' ? d : ''}`;
    case 403:
      return `Not allowed.${d}`;
    case 404:
      return `Not found: it may have been deleted.${d}`;
    case 409:
      return `Refused.${d}`;
    case 413:
      return `Too large.${d}`;
    case 429:
      return `Too many attempts: wait${retryAfter ? ` ${retryAfter} s` : ' a little'} and try again.${d}`;
    case 503:
      return `The server is busy or a part of it is down: try again shortly.${d}`;
    default:
      return status >= 500 ? 'The server failed. Try again; if it goes on, tell its admin.' : `Refused.${d}`;
  }
}

/** Turns a non-2xx answer (problem+json or not) into an ApiError. */
export async function errorOf(res: Response): Promise<ApiError> {
  let problem: Record<string, unknown> = {};
  try {
    problem = (await res.json()) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  const detail = typeof problem.detail === 'string' ? problem.detail : undefined;
  return new ApiError(res.status, explain(res.status, detail, res.headers.get('retry-after')), problem);
}

type Query = Record<string, string | string[] | number | undefined>;

export function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) params.append(k, String(one));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

/**
 * One API call: same-origin credentials (the HttpOnly session cookie), the CSRF header on every
 * unsafe method, answers parsed with the contracts' schemas.
 */
export async function call<T>(
  method: string,
  path: string,
  options: { schema?: z.ZodType<T>; json?: unknown; query?: Query; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['x-nondivy-csrf'] = '1';
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(API + path + queryString(options.query ?? {}), {
      method,
      headers,
      credentials: 'same-origin',
      body: options.json === undefined ? undefined : JSON.stringify(options.json),
      signal: options.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, explain(0, undefined));
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204 || !options.schema) return undefined as T;
  return options.schema.parse(await res.json());
}

export const contentUrl = (id: string, download = false) => `${API}/library/${encodeURIComponent(id)}/content${download ? '?download=1' : ''}`;

export const isAbort = (err: unknown) => (err as Error)?.name === 'AbortError';
