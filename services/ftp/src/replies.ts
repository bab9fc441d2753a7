import { AppError, isAppError, type ErrorKind } from '@nondivy/errors';

/** An FTP reply to a failure: the code and a message safe to show the client. */
export interface FtpReply {
  code: number;
  message: string;
}

/** The FTP door's one mapping of error kinds to reply codes (RFC 959, RFC 2428 for 522). */
const CODE_OF: Record<ErrorKind, number> = {
  bad_input: 553,
  unauthorized: 530,
  forbidden: 550,
  not_found: 550,
  conflict: 550,
  too_large: 552,
  range_not_satisfiable: 554,
  rate_limited: 421,
  unavailable: 451,
  internal: 451,
};

/** What a client is told about a failure that is not ours to explain (logged in full instead). */
export const GENERIC_FAILURE = 'Local error in processing';

/**
 * A refusal that FTP answers with its own code rather than its kind's: e.g. 522 for an EPRT whose
 * network protocol we do not speak (RFC 2428), where the kind alone (`bad_input`) would say 501.
 */
export class FtpRefusal extends AppError {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super('bad_input', message);
  }
}

export interface ReplyOptions {
  /**
   * The code for `bad_input` when the bad input is a command's argument (501, RFC 959) rather than
   * a file name (553, the default).
   */
  badInput?: number;
  /** The code for failures that are not AppErrors (a bug, or an unclassified backend failure). */
  fallback?: number;
}

/**
 * The reply to a failure. An AppError's message is written to be shown (see libs/errors), except
 * for `internal`, whose details stay in the log; anything else gets a generic message, because
 * ftp-srv-style "send err.message" would leak paths and internals.
 */
export function replyFor(err: unknown, options: ReplyOptions = {}): FtpReply {
  if (err instanceof FtpRefusal) return { code: err.code, message: err.message };
  if (!isAppError(err)) return { code: options.fallback ?? 451, message: GENERIC_FAILURE };
  if (err.kind === 'internal') return { code: CODE_OF.internal, message: GENERIC_FAILURE };
  const code = err.kind === 'bad_input' && options.badInput ? options.badInput : CODE_OF[err.kind];
  return { code, message: err.message };
}
