import { ITEM_KINDS, type ItemKind } from '@nondivy/contracts';
import { AppError } from '@nondivy/errors';

/**
 * The FTP tree is virtual: it is computed from the library, never a folder on disk.
 *
 *   /                              root: library/ and upload/
 *   /library                       one folder per kind
 *   /library/<kind>                the kind's root folder: its subfolders and items
 *   /library/<kind>/<folder…>/<n>  a folder or an item: `n` in the folder `folder…` of the kind
 *                                  (`''` the kind's root); which one only the library knows
 *   /upload                        a drop box: members store files here and the kind is guessed; it
 *                                  lists the member's own latest items (wherever they are), by path name
 *   /upload/<n>                    where a STOR lands; else the member's own newest item of that name
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
  | { type: 'entry'; path: string; kind: ItemKind; folder: string; name: string }
  | { type: 'drop'; path: string; name: string }
  | { type: 'missing'; path: string };

/** A place below a kind: the kind's root, or an entry (a folder or an item) in one of its folders. */
export type KindPath = Extract<VirtualPath, { type: 'kind' | 'entry' }>;
/** The folders that are always there and never change: the root, /library and /upload. */
export type FixedFolder = Extract<VirtualPath, { type: 'root' | 'library' | 'upload' }>;

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
  const [top, second, ...rest] = segments;
  if (top === undefined) return { type: 'root', path: '/' };
  if (top === 'library') {
    if (second === undefined) return { type: 'library', path: '/library' };
    if (!isKind(second)) return { type: 'missing', path };
    const name = rest.pop();
    if (name === undefined) return { type: 'kind', path, kind: second };
    return { type: 'entry', path, kind: second, folder: rest.join('/'), name };
  }
  if (top === 'upload') {
    if (second === undefined) return { type: 'upload', path: '/upload' };
    if (rest.length === 0) return { type: 'drop', path, name: second };
  }
  return { type: 'missing', path };
}

/** Whether a place is one of the fixed folders (root, /library, /upload). */
export const isFixedFolder = (p: VirtualPath): p is FixedFolder => p.type === 'root' || p.type === 'library' || p.type === 'upload';

/** The folders directly under a fixed folder (root and /library). */
export function subfolders(p: VirtualPath): string[] {
  if (p.type === 'root') return ['library', 'upload'];
  if (p.type === 'library') return [...ITEM_KINDS];
  return [];
}

/** The folder within its kind that a place names when it is a folder: `''` for the kind's root, `A/B` for /library/<kind>/A/B. */
export function folderOf(p: KindPath): string {
  if (p.type === 'kind') return '';
  return p.folder ? `${p.folder}/${p.name}` : p.name;
}

/** The path in the tree of a folder within a kind (`''`: the kind's root). */
export const kindFolderPath = (kind: ItemKind, folder: string): string => (folder ? `/library/${kind}/${folder}` : `/library/${kind}`);

/** The path in the tree of a name in a folder within a kind. */
export const entryPath = (kind: ItemKind, folder: string, name: string): string => `${kindFolderPath(kind, folder)}/${name}`;

/**
 * The folders on the way to `folder` (`A/B/C` → `A`, `A/B`, `A/B/C`), each with its parent and its
 * own name: where a file of that name would stand in the way.
 */
export function foldersOnTheWay(folder: string): { folder: string; parent: string; name: string }[] {
  const names = folder.split('/').filter((n) => n !== '');
  return names.map((name, i) => ({ folder: names.slice(0, i + 1).join('/'), parent: names.slice(0, i).join('/'), name }));
}

/** How a path appears inside a reply: quotes doubled (RFC 959, PWD/MKD). */
export const quotePath = (path: string) => `"${path.replace(/"/g, '""')}"`;
