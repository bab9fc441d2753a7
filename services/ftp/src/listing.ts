import type { Item } from '@nondivy/contracts';

/** One entry of a folder listing. */
export interface Entry {
  name: string;
  folder: boolean;
  size: number;
  modified: Date;
  owner: string;
  /** RFC 3659 perm facts for this session (e.g. `r` for anonymous, `rwdf` for the uploader). */
  perm: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number) => String(n).padStart(2, '0');

/** `YYYYMMDDHHMMSS` in UTC (MDTM, MLSD modify fact). */
export function ftpTime(d: Date): string {
  return `${d.getUTCFullYear()}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}`;
}

const FTP_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,3}))?$/;

/**
 * `YYYYMMDDHHMMSS[.sss]` in UTC (MFMT, SITE UTIME) as a date, or null unless it is exactly that: 14
 * digits, an optional fraction of 1 to 3 digits, a real date and time, and a year from 1970 to 9999.
 */
export function parseFtpTime(text: string): Date | null {
  const m = FTP_TIME.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = m[7] ? Number(m[7].padEnd(3, '0')) : 0;
  if (year < 1970) return null;
  const d = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms));
  // Date.UTC rolls over (Feb 30 → Mar 2, hour 24 → next day): a real time reads back the same.
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day) return null;
  if (d.getUTCHours() !== hour || d.getUTCMinutes() !== minute || d.getUTCSeconds() !== second) return null;
  return d;
}

/** The time an item's file shows: its own modification time when a client set one, else its creation. */
export const itemTime = (item: Item): Date => new Date(item.modifiedAt ?? item.createdAt);

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

/**
 * The entry of a library item, as seen by a session that may (or may not) change it: everyone may
 * read it (`r`); its uploader and admins may also store onto it (`w`: the bytes are replaced),
 * delete it (`d`) and rename it (`f`).
 */
export function itemEntry(name: string, item: Item, canChange: boolean): Entry {
  return { name, folder: false, size: item.size, modified: itemTime(item), owner: item.uploadedBy, perm: canChange ? 'rwdf' : 'r' };
}

/** Folders are virtual: they carry the time this process started. */
const STARTED = new Date();

/** The entry of a folder with its RFC 3659 perm facts for this session (e.g. `el`, `elcmfp`). */
export function folderEntry(name: string, perm: string, modified = STARTED): Entry {
  return { name, folder: true, size: 0, modified, owner: 'nondivy', perm };
}
