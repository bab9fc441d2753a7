import { AppError } from '@nondivy/errors';

/**
 * The one place where file names from the outside world are made safe. Front doors never join paths
 * or build headers from raw names: they call `safeFilename` once and use its result everywhere.
 * Blob keys never derive from a name at all (see blob stores).
 *
 * A name a client chooses (an FTP STOR or RNTO, a REST upload or rename) goes through
 * `requireAcceptedFilename` instead: the same rule for every door, so one file gets one name
 * whichever way it arrives. A name the library would change is refused, naming the one it would
 * accept, rather than stored under a name the client never chose (a sync tool would then see its
 * file missing and upload it again). The only change made silently is Unicode NFC: both doors
 * apply it before the rule (FTP to every path segment), and a composed and a decomposed "é" are the
 * same name to every file system a user sees. Everything else is refused: forbidden characters,
 * controls, path segments, runs of white space, leading dots, trailing dots and spaces (no browser
 * adds those, and FTP refuses them too), Windows device names and names over 255 bytes. An empty
 * name is not a choice: the library's default name is used.
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

/**
 * The name the library would store for a name a client chose (`''`: none, nothing would be left of
 * it), after the one silent normalisation (NFC).
 */
export function acceptedFilename(chosen: string): string {
  return safeFilename(chosen.normalize('NFC'), '');
}

/**
 * The rule for a name a client chooses (see the top of this file): the name itself, in NFC, when
 * the library would store it as it is; else `bad_input` whose message names the accepted name and
 * whose details carry it as `acceptedName` (FTP answers 553, HTTP 400 problem+json).
 */
export function requireAcceptedFilename(chosen: string): string {
  const name = chosen.normalize('NFC');
  const accepted = acceptedFilename(name);
  if (accepted === name) return name;
  if (!accepted) throw new AppError('bad_input', 'File name not allowed');
  throw new AppError('bad_input', `File name not allowed; "${accepted}" would be`, { details: { acceptedName: accepted } });
}

/** Deepest folder and longest folder path (UTF-8 bytes) the library keeps (as `@nondivy/contracts`). */
const MAX_FOLDER_DEPTH = 16;
const MAX_FOLDER_BYTES = 1024;

/**
 * The rule for a folder a client chooses (`A/B`, within a kind): each name in it meets the file
 * name rule (`requireAcceptedFilename`), at most 16 deep and 1024 bytes. Empty names (leading,
 * trailing or doubled slashes) are dropped; `''` is the kind's root. A refused folder names the
 * accepted one (`acceptedFolder` in the details) when there is one.
 */
export function requireAcceptedFolder(chosen: string): string {
  const names = chosen.normalize('NFC').split('/').filter((s) => s.length > 0);
  const accepted = names.map((n) => acceptedFilename(n));
  const folder = names.join('/');
  if (names.length > MAX_FOLDER_DEPTH) throw new AppError('bad_input', `Folder too deep: at most ${MAX_FOLDER_DEPTH} levels`);
  if (Buffer.byteLength(folder) > MAX_FOLDER_BYTES) throw new AppError('bad_input', `Folder path too long: at most ${MAX_FOLDER_BYTES} bytes`);
  if (accepted.every((a, i) => a === names[i])) return folder;
  const alternative = accepted.filter((a) => a.length > 0).join('/');
  if (!alternative) throw new AppError('bad_input', 'Folder name not allowed');
  throw new AppError('bad_input', `Folder name not allowed; "${alternative}" would be`, { details: { acceptedFolder: alternative } });
}

/**
 * A multipart file name as a browser sent it: the HTML standard's form encoding writes `"`, CR and
 * LF in a file name as `%22`, `%0D` and `%0A` (and nothing else, not even `%` itself), so exactly
 * those three escapes are decoded, and the name then meets the same rule as an FTP name (where `"`
 * arrives as it is). A name that really contained "%22" is read as `"`: the form encoding cannot
 * tell them apart, and the rule then refuses it, naming the accepted alternative.
 */
export function decodeFormFilename(sent: string): string {
  return sent.replace(/%(22|0D|0A)/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
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
