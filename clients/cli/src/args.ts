import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** An option as `util.parseArgs` takes it. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
}
export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends { type: 'boolean' }
  ? S extends { multiple: true }
    ? boolean[]
    : boolean
  : S extends { multiple: true }
    ? string[]
    : string;

/** The parsed values of a set of options (absent options are undefined). */
export type Values<O extends OptionSpecs> = { [K in keyof O]?: ValueOf<O[K]> };

/** Options every command takes. */
export const COMMON_OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  device: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

export const COMMON_HELP = `Common options:
  --server URL    the site's address (env NONDIVY_SERVER; else the saved one; else the one "discover" finds)
  --token T       a login token (env NONDIVY_TOKEN; else the one saved by "login" for that server)
  --device NAME   this device's name (env NONDIVY_DEVICE; default: the host name)
  --json          machine-readable output on stdout
  -h, --help      this help`;

export type CommonValues = Values<typeof COMMON_OPTIONS>;

export interface Parsed<O extends OptionSpecs> {
  values: Values<O & typeof COMMON_OPTIONS>;
  positionals: string[];
}

/** Parses a command's arguments strictly (unknown options are usage errors). */
export function parseCommandArgs<O extends OptionSpecs>(command: string, argv: string[], options: O): Parsed<O> {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return { values: values as Values<O & typeof COMMON_OPTIONS>, positionals };
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    // A value that starts with "-" (`--to -abc…`): parseArgs's own advice (`--to=-abc…`) is the point.
    if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      throw new UsageError(text.split('\n').map((l) => l.trim()).filter(Boolean).join(' '));
    }
    // Otherwise parseArgs adds advice on "--" after the first sentence: keep the first one only.
    const message = text.split(/\.\s/)[0]!.replace(/\.$/, '');
    // Ids are url-safe base64 and may start with "-": they must come after "--".
    const idLike = argv.find((a) => /^-[A-Za-z0-9_][A-Za-z0-9_-]{14,}$/.test(a));
    if (idLike) throw new UsageError(`${message}: an id that starts with "-" goes after "--" (nondivy ${command} -- ${idLike})`);
    throw new UsageError(`${message} (see "nondivy ${command} --help")`);
  }
}

/** A whole number option within bounds, or the default when absent. */
export function intOption(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
  return n;
}

/** A positive duration in seconds (decimals allowed), in milliseconds, or the default when absent. */
export function secondsOption(name: string, raw: string | undefined, fallbackMs: number | undefined): number | undefined {
  if (raw === undefined) return fallbackMs;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) throw new UsageError(`--${name} must be a number of seconds (at most a day)`);
  return Math.round(n * 1000);
}

/** One of the allowed words. */
export function choiceOption<T extends string>(name: string, raw: string | undefined, choices: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(raw)) throw new UsageError(`--${name} must be one of: ${choices.join(', ')}`);
  return raw as T;
}
