import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

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

/** Creates the process logger; services take children of it (`log.child({ reqId })`). */
export function createLogger(service: string, level = 'info'): Logger {
  return pino(loggerOptions(service, level));
}
