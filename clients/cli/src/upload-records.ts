import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';

/**
 * What `nondivy upload` remembers of an unfinished upload, so that running the same command again
 * continues it: one small file per (site, absolute path, size, modification time) under
 * `$XDG_STATE_HOME/nondivy/uploads/` (`~/.local/state/nondivy/uploads/` without it), readable by its
 * owner only (the folder 0700, each file 0600: the upload's address is as good as a capability for
 * a guest's upload). A record is removed once the item exists, or when the server no longer knows
 * the upload.
 */
export const UploadRecord = z.object({
  server: z.string(),
  path: z.string(),
  size: z.number().int().nonnegative(),
  mtimeMs: z.number(),
  /** The upload's address (same origin as `server`). */
  url: z.string().url(),
  /** The tus Upload-Metadata it was created with: other details make another upload. */
  metadata: z.string(),
  createdAt: z.string(),
});
export type UploadRecord = z.infer<typeof UploadRecord>;

export type RecordKey = Pick<UploadRecord, 'server' | 'path' | 'size' | 'mtimeMs'>;

/** `$XDG_STATE_HOME/nondivy/uploads`, `~/.local/state/nondivy/uploads` without it. */
export function uploadRecordsDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.local', 'state');
  return join(base, 'nondivy', 'uploads');
}

const fileOf = (dir: string, key: RecordKey) =>
  join(dir, `${createHash('sha256').update(JSON.stringify([key.server, key.path, key.size, key.mtimeMs])).digest('hex').slice(0, 40)}.json`);

export class UploadRecords {
  readonly dir: string;
  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.dir = uploadRecordsDir(env);
  }

  /** The record of this very file (same site, path, size and time), or null; an unreadable one counts as none (and is removed). */
  async find(key: RecordKey): Promise<UploadRecord | null> {
    const file = fileOf(this.dir, key);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      return null;
    }
    try {
      const record = UploadRecord.parse(JSON.parse(text));
      if (record.server === key.server && record.path === key.path && record.size === key.size && record.mtimeMs === key.mtimeMs) return record;
    } catch {
      /* damaged: forgotten below */
    }
    await rm(file, { force: true });
    return null;
  }

  /**
   * Records of the same site and path whose file has changed since (other size or time): their
   * uploads can never be continued. The caller ends them on the server and removes them.
   */
  async stale(key: RecordKey): Promise<UploadRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: UploadRecord[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      try {
        const record = UploadRecord.parse(JSON.parse(await readFile(join(this.dir, name), 'utf8')));
        if (record.server === key.server && record.path === key.path && (record.size !== key.size || record.mtimeMs !== key.mtimeMs)) out.push(record);
      } catch {
        /* not ours to judge */
      }
    }
    return out;
  }

  /** Saves a record (0600, replacing any older one atomically). */
  async save(record: UploadRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // A folder made earlier by something else keeps its mode otherwise.
    await chmod(this.dir, 0o700);
    const file = fileOf(this.dir, record);
    const temp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(temp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
      await chmod(temp, 0o600);
      await rename(temp, file);
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  async remove(key: RecordKey): Promise<void> {
    await rm(fileOf(this.dir, key), { force: true });
  }
}
