import type { Item } from '@nondivy/contracts';

/** One entry of a folder listing. */
export interface Entry {
  name: string;
  folder: boolean;
  size: number;
  modified: Date;
  owner: string;
  /** RFC 3659 perm facts for this session (e.g. `r` for anonymous, `rdf` for the uploader). */
  perm: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number) => String(n).padStart(2, '0');

/** `YYYYMMDDHHMMSS` in UTC (MDTM, MLSD modify fact). */
export function ftpTime(d: Date): string {
  return `${d.getUTCFullYear()}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}`;
}

/** A line of `ls -l` (LIST), the format every client parses. Owner names are kept to one word. */
export function lsLine(e: Entry, now = Date.now()): string {
  const d = e.modified;
  const recent = Math.abs(now - d.getTime()) < 180 * 24 * 3600 * 1000;
  const when = `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${recent ? `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}` : ` ${d.getUTCFullYear()}`}`;
  const mode = e.folder ? 'drwxr-xr-x' : e.perm.includes('d') ? '-rw-r--r--' : '-r--r--r--';
  const owner = (e.owner.replace(/\s+/g, '_') || 'nondivy').slice(0, 32);
  return `${mode} 1 ${owner.padEnd(8)} nondivy  ${String(e.folder ? 0 : e.size).padStart(12)} ${when} ${e.name}`;
}

/** A line of MLSD / MLST (RFC 3659): machine-readable facts, then the name. */
export function mlsxLine(e: Entry): string {
  const facts = e.folder ? `type=dir;perm=${e.perm};modify=${ftpTime(e.modified)};` : `type=file;size=${e.size};perm=${e.perm};modify=${ftpTime(e.modified)};`;
  return `${facts} ${e.name}`;
}

/** The entry of a library item, as seen by a session that may (or may not) change it. */
export function itemEntry(name: string, item: Item, canChange: boolean): Entry {
  return { name, folder: false, size: item.size, modified: new Date(item.createdAt), owner: item.uploadedBy, perm: canChange ? 'rdf' : 'r' };
}

/** Folders are virtual: they carry the time this process started. */
const STARTED = new Date();

export function folderEntry(name: string, writable: boolean, modified = STARTED): Entry {
  return { name, folder: true, size: 0, modified, owner: 'nondivy', perm: writable ? 'elc' : 'el' };
}
