/**
 * Errors the CLI reports to its user: one line on stderr and an exit status. Anything else that
 * reaches the top is a bug and is shown with its stack.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** Bad command-line usage (exit status 2). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** SIGINT or SIGTERM arrived: the command stops, cleans up and exits 130 (or 0 where it says so). */
export class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted (${signal})`);
    this.name = 'Interrupted';
  }
}

/** True when `err` is the abort caused by an interruption (directly or as an AbortError's cause). */
export function isInterruption(err: unknown, signal?: AbortSignal): boolean {
  if (err instanceof Interrupted) return true;
  if (signal?.aborted && signal.reason instanceof Interrupted) {
    return err === signal.reason || (err instanceof Error && (err.name === 'AbortError' || err.cause === signal.reason));
  }
  return false;
}

/** The message of anything thrown. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
