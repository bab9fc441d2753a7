/**
 * One error type for the whole system. Backends (Redis, blob stores, parsers) translate their own
 * failures into an AppError with a `kind` once, at their boundary; each front door (HTTP, FTP) maps
 * the kind to its protocol once. `message` is always safe to show to a client: it never carries an
 * internal path, key or stack. The original failure travels in `cause` for the logs.
 */
export type ErrorKind =
  | 'bad_input'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'range_not_satisfiable'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

export interface AppErrorOptions {
  cause?: unknown;
  /** Seconds after which a retry may succeed (rate limits, outages). */
  retryAfter?: number;
  /** Extra machine-readable facts that are safe to show (e.g. which fields were bad). */
  details?: Record<string, unknown>;
}

export class AppError extends Error {
  readonly kind: ErrorKind;
  readonly retryAfter?: number;
  readonly details?: Record<string, unknown>;

  constructor(kind: ErrorKind, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.kind = kind;
    this.retryAfter = options.retryAfter;
    this.details = options.details;
  }
}

export const isAppError = (err: unknown): err is AppError => err instanceof AppError;

export const badInput = (message: string, details?: Record<string, unknown>) =>
  new AppError('bad_input', message, { details });
export const unauthorized = (message = 'Authentication required') => new AppError('unauthorized', message);
export const forbidden = (message = 'Not allowed') => new AppError('forbidden', message);
export const notFound = (message = 'Not found') => new AppError('not_found', message);
export const conflict = (message: string) => new AppError('conflict', message);
export const tooLarge = (message: string) => new AppError('too_large', message);
export const unavailable = (message: string, cause?: unknown) =>
  new AppError('unavailable', message, { cause, retryAfter: 2 });

/** HTTP status for each kind: the one mapping used by every HTTP service (FTP's is in services/ftp). */
export const httpStatusOf: Record<ErrorKind, number> = {
  bad_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  range_not_satisfiable: 416,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};
