/**
 * The one place where file names from the outside world are made safe. Front doors never join paths
 * or build headers from raw names: they call `safeFilename` once and use its result everywhere.
 * Blob keys never derive from a name at all (see blob stores).
 */

const MAX_FILENAME_BYTES = 255;

// C0/C1 controls and DEL; bidirectional overrides, embeddings and isolates; zero-width and BOM characters.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\u061c\ufeff\ufff9-\ufffb]/gu;
// Characters that are path separators or reserved on common file systems (Windows, macOS, FAT on e-readers).
const RESERVED_CHARS = /[\\/:*?"<>|]/g;
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/** Truncates a string to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(value: string, max: number): string {
  // Stryker disable next-line EqualityOperator,ConditionalExpression: a fast path; the loop below returns the same string when it fits
  if (Buffer.byteLength(value) <= max) return value;
  let out = '';
  let bytes = 0;
  for (const ch of value) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * Turns any client-supplied name into a safe, single path component: last segment only (both `/`
 * and `\` count), Unicode NFC, no control or bidi-override characters, no reserved characters, no
 * leading dots or trailing dots/spaces, not a Windows device name, at most 255 UTF-8 bytes with its
 * extension kept. A name with nothing left becomes `fallback`.
 */
export function safeFilename(raw: string | undefined | null, fallback = 'file'): string {
  let name = String(raw ?? '').normalize('NFC');
  name = name.replace(UNSAFE_CHARS, '');
  // Stryker disable next-line Regex: one separator or a run of them, the empty segments are dropped either way
  const segments = name.split(/[\\/]+/).filter((s) => s.length > 0);
  name = segments.length > 0 ? segments[segments.length - 1]! : '';
  name = name.replace(RESERVED_CHARS, '_').replace(/\s+/g, ' ');
  name = name.replace(/^[.\s]+/, '').replace(/[.\s]+$/, '');
  if (WINDOWS_DEVICE.test(name)) name = `_${name}`;
  if (name.length === 0) name = fallback;
  if (Buffer.byteLength(name) > MAX_FILENAME_BYTES) {
    const dot = name.lastIndexOf('.');
    // Stryker disable next-line ConditionalExpression,EqualityOperator: `dot > 0` vs `>= 0`/true: leading dots are gone (dot is never 0), and with no dot (-1) a name over 255 bytes is over 16 characters anyway
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
    // Stryker disable next-line MethodExpression: the stem is over the budget, so cutting the whole name or the stem gives the same prefix
    const stem = ext ? name.slice(0, dot) : name;
    name = truncateUtf8(stem, MAX_FILENAME_BYTES - Buffer.byteLength(ext)).replace(/[.\s]+$/, '') + ext;
  }
  return name;
}

/** A readable default title from a file name: its stem, with `_` and `.` turned into spaces. */
export function titleFromFilename(filename: string): string {
  const dot = filename.lastIndexOf('.');
  const stem = dot > 0 ? filename.slice(0, dot) : filename;
  // Stryker disable next-line Regex: each _ or . or a run of them: the runs of spaces are collapsed on the next line
  const spaced = stem.replace(/[_.]+/g, ' ');
  const title = spaced.replace(/\s+/g, ' ').trim();
  return truncateUtf8(title || filename, 300);
}
