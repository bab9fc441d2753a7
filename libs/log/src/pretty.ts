/**
 * Human log lines for a person watching a terminal: `14:03:22 INFO  gateway  message  key=value …`.
 * The JSON lines stay the format for machines (Compose, systemd, log collectors); this one is only
 * chosen for a terminal or by NONDIVY_LOG_FORMAT=pretty.
 */

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '\x1b[90m' },
  20: { name: 'DEBUG', color: '\x1b[36m' },
  30: { name: 'INFO', color: '\x1b[32m' },
  40: { name: 'WARN', color: '\x1b[33m' },
  50: { name: 'ERROR', color: '\x1b[31m' },
  60: { name: 'FATAL', color: '\x1b[35m' },
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

/** Fields every line has or shows elsewhere on the line. */
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'service', 'component', 'msg']);
/** At most this many fields follow the message; the JSON format has them all. */
const MAX_FIELDS = 8;
/** A field's value is cut to this many characters. */
const MAX_VALUE_CHARS = 120;

/**
 * Control characters (ESC starts terminal escape sequences), line and paragraph separators and the
 * bidirectional overrides: logged text may come from clients (file names, user names), and none of
 * it may move the cursor, recolour or clear the operator's terminal, or forge a line.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every unsafe character written as a `\uXXXX` escape. */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function cut(text: string): string {
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

function showValue(key: string, value: unknown): string {
  if (key === 'err' && value && typeof value === 'object' && 'message' in value) return String((value as { message: unknown }).message);
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

function clock(time: unknown): string {
  const date = typeof time === 'string' || typeof time === 'number' ? new Date(time) : new Date();
  const d = Number.isNaN(date.getTime()) ? new Date() : date;
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/**
 * One pino JSON line as one human line (plus, for errors, the stack indented below it). A line that
 * is not a JSON object is shown escaped as it is.
 */
export function prettyLine(json: string, options: { color: boolean }): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new Error('not an object');
  } catch {
    return `${escapeForTerminal(json.replace(/\n$/, ''))}\n`;
  }
  const level = LEVELS[Number(entry.level)] ?? { name: String(entry.level), color: '' };
  const paint = (color: string, text: string) => (options.color && color ? `${color}${text}${RESET}` : text);
  const component = String(entry.component ?? entry.service ?? '');
  const fields = Object.entries(entry)
    .filter(([k, v]) => !HIDDEN.has(k) && v !== undefined)
    .slice(0, MAX_FIELDS)
    .map(([k, v]) => `${k}=${cut(showValue(k, v))}`);
  // Each piece is escaped before it is painted: only our own colour codes reach the terminal.
  const parts = [
    paint(DIM, clock(entry.time)),
    paint(level.color, escapeForTerminal(level.name.padEnd(5))),
    paint(DIM, escapeForTerminal(component.padEnd(9))),
    escapeForTerminal(String(entry.msg ?? '')),
    ...(fields.length ? [paint(DIM, escapeForTerminal(fields.join(' ')))] : []),
  ];
  let line = parts.join(' ') + '\n';
  const err = entry.err as { stack?: unknown } | undefined;
  if (Number(entry.level) >= 50 && typeof err?.stack === 'string') {
    line += err.stack.split('\n').slice(1, 6).map((l) => `    ${escapeForTerminal(l.trim())}\n`).join('');
  }
  return line;
}
