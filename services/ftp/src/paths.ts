import { ITEM_KINDS, type ItemKind } from '@nondivy/contracts';
import { AppError } from '@nondivy/errors';

/**
 * The FTP tree is virtual: it is computed from the library, never a folder on disk.
 *
 *   /                     root: library/ and upload/
 *   /library              one folder per kind
 *   /library/<kind>       the items of that kind, by their path names (unique per kind)
 *   /library/<kind>/<n>   one item
 *   /upload               a drop box: members store files here and the kind is guessed; it lists
 *                         the member's own latest items (wherever uploaded), by their path names
 *   /upload/<n>           where a STOR lands; else the member's own newest item of that path name
 *
 * Client paths are resolved against the working folder: empty segments and `.` are dropped, `..`
 * goes up and stops at the root, so no path ever leaves the tree. Control characters (NUL included)
 * and backslashes are refused outright: no legitimate client sends them, and a name must never mean
 * one thing here and another on the client's disk.
 */
export type VirtualPath =
  | { type: 'root'; path: '/' }
  | { type: 'library'; path: '/library' }
  | { type: 'kind'; path: string; kind: ItemKind }
  | { type: 'upload'; path: '/upload' }
  | { type: 'item'; path: string; kind: ItemKind; name: string }
  | { type: 'drop'; path: string; name: string }
  | { type: 'missing'; path: string };

const FORBIDDEN = /[\u0000-\u001f\u007f\\]/;
const MAX_PATH_BYTES = 4096;

const isKind = (s: string): s is ItemKind => (ITEM_KINDS as readonly string[]).includes(s);

/** Resolves a client path (absolute, or relative to `cwd`) to a place in the virtual tree. */
export function resolvePath(cwd: string, raw: string | null | undefined): VirtualPath {
  const arg = raw ?? '';
  if (FORBIDDEN.test(arg)) throw new AppError('bad_input', 'Path not allowed: control characters and backslashes are refused');
  if (Buffer.byteLength(arg) > MAX_PATH_BYTES) throw new AppError('bad_input', 'Path too long');
  const joined = arg.startsWith('/') ? arg : `${cwd}/${arg}`;
  const segments: string[] = [];
  for (const segment of joined.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment.normalize('NFC'));
  }
  const path = `/${segments.join('/')}`;
  const [top, second, third, ...rest] = segments;
  if (top === undefined) return { type: 'root', path: '/' };
  if (rest.length > 0) return { type: 'missing', path };
  if (top === 'library') {
    if (second === undefined) return { type: 'library', path: '/library' };
    if (!isKind(second)) return { type: 'missing', path };
    if (third === undefined) return { type: 'kind', path, kind: second };
    return { type: 'item', path, kind: second, name: third };
  }
  if (top === 'upload') {
    if (second === undefined) return { type: 'upload', path: '/upload' };
    if (third === undefined) return { type: 'drop', path, name: second };
  }
  return { type: 'missing', path };
}

export const isFolder = (p: VirtualPath): p is Extract<VirtualPath, { type: 'root' | 'library' | 'kind' | 'upload' }> =>
  p.type === 'root' || p.type === 'library' || p.type === 'kind' || p.type === 'upload';

/** The folders directly under a fixed folder (root and /library). */
export function subfolders(p: VirtualPath): string[] {
  if (p.type === 'root') return ['library', 'upload'];
  if (p.type === 'library') return [...ITEM_KINDS];
  return [];
}

/** How a path appears inside a reply: quotes doubled (RFC 959, PWD/MKD). */
export const quotePath = (path: string) => `"${path.replace(/"/g, '""')}"`;
