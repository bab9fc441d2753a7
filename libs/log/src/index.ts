import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { prettyLine } from './pretty.js';

export type { Logger } from 'pino';
export { escapeForTerminal, prettyLine } from './pretty.js';

/** `json`: one JSON object per line, for machines. `pretty`: human lines, for a terminal. */
export type LogFormat = 'json' | 'pretty';

/** The format asked for, else human lines on a terminal and JSON lines everywhere else. */
export function logFormatFor(setting: LogFormat | undefined, stream: { isTTY?: boolean } = process.stdout): LogFormat {
  return setting ?? (stream.isTTY ? 'pretty' : 'json');
}

/** Writes pino's JSON lines to stdout as human lines (synchronously: the order of lines is kept). */
function prettyStdout(): DestinationStream {
  const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  return { write: (line: string) => void process.stdout.write(prettyLine(line, { color })) };
}

/**
 * Options for the one pino logger of a process. Secrets are redacted wherever they appear in a
 * logged request or object; fastify uses the same options for its request loggers.
 */
export function loggerOptions(service: string, level: string): LoggerOptions {
  return {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'headers.authorization',
        'password',
        '*.password',
        'token',
        '*.token',
        'secretKey',
        '*.secretKey',
      ],
      censor: '[redacted]',
    },
  };
}

/**
 * Creates the process logger; services take children of it (`log.child({ reqId })`). JSON lines on
 * stdout unless `format` is `pretty`.
 */
export function createLogger(service: string, level = 'info', format: LogFormat = 'json'): Logger {
  return format === 'pretty' ? pino(loggerOptions(service, level), prettyStdout()) : pino(loggerOptions(service, level));
}
