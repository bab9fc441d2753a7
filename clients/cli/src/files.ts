import { createHash, type Hash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { link, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { safeFilename, truncateUtf8 } from '@nondivy/storage/filenames';
import { CliError } from './errors.js';

export { safeFilename };

const MAX_NAME_BYTES = 255;
const PART_SUFFIX = '.nondivy-part';

/** SHA-256 (hex) of a file, streamed (bounded memory); `onBytes` sees each chunk's length. */
export async function sha256File(path: string, onBytes?: (n: number) => void, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await hashFileInto(hash, path, onBytes, signal);
  return hash.digest('hex');
}

/** Feeds a file's bytes to a hash (to continue hashing a resumed download); returns the byte count. */
export async function hashFileInto(hash: Hash, path: string, onBytes?: (n: number) => void, signal?: AbortSignal): Promise<number> {
  let total = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024, signal })) {
    hash.update(chunk as Buffer);
    total += (chunk as Buffer).length;
    onBytes?.((chunk as Buffer).length);
  }
  return total;
}

/** The file's stats, or null when nothing is there. */
export async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** `name`, then `name (1).ext`, `name (2).ext`… — each within the file-name length limit. */
export function numberedName(name: string, k: number): string {
  if (k === 0) return name;
  const dot = name.lastIndexOf('.');
  const hasExt = dot > 0 && name.length - dot <= 16;
  const stem = hasExt ? name.slice(0, dot) : name;
  const ext = hasExt ? name.slice(dot) : '';
  const suffix = ` (${k})${ext}`;
  return truncateUtf8(stem, MAX_NAME_BYTES - Buffer.byteLength(suffix)) + suffix;
}

/** The hidden temporary name a file is written under until it is verified: `.<name>.nondivy-part`. */
export function partName(name: string, tag?: string): string {
  const extra = `${tag ? `.${tag}` : ''}${PART_SUFFIX}`;
  return `.${truncateUtf8(name, MAX_NAME_BYTES - 1 - Buffer.byteLength(extra))}${extra}`;
}

const MAX_NUMBERED = 10_000;

/**
 * Moves a verified temporary file to `dir/name`, or to `name (1).ext`… when that is taken: never
 * over an existing file, even one that appears meanwhile (hard link, which fails if the name
 * exists; where links are not supported, the name is first created exclusively). Returns the path.
 */
export async function placeWithoutOverwrite(temp: string, dir: string, name: string): Promise<string> {
  let linkable = true;
  for (let k = 0; k < MAX_NUMBERED; k++) {
    const candidate = join(dir, numberedName(name, k));
    if (linkable) {
      try {
        await link(temp, candidate);
        await unlink(temp);
        return candidate;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') continue;
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EXDEV') throw err;
        linkable = false;
      }
    }
    try {
      await (await open(candidate, 'wx')).close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    await rename(temp, candidate);
    return candidate;
  }
  throw new CliError(`too many files named like ${name} in ${dir}`);
}

/** Removes a file if it is there. */
export async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/** More bytes came than were announced. */
export class TooManyBytes extends Error {
  constructor(readonly limit: number) {
    super(`more bytes than the ${limit} announced`);
    this.name = 'TooManyBytes';
  }
}

/**
 * Writes a byte stream to an open file while hashing it, with back-pressure (one chunk in memory at
 * a time). Stops with `TooManyBytes` before writing past `limit`. Returns how many bytes came.
 */
export async function writeHashed(
  source: AsyncIterable<Uint8Array>,
  file: FileHandle,
  hash: Hash,
  opts: { limit?: number; onBytes?: (n: number) => void; signal?: AbortSignal } = {},
): Promise<number> {
  let total = 0;
  for await (const chunk of source) {
    opts.signal?.throwIfAborted();
    total += chunk.length;
    if (opts.limit !== undefined && total > opts.limit) throw new TooManyBytes(opts.limit);
    hash.update(chunk);
    let offset = 0;
    while (offset < chunk.length) offset += (await file.write(chunk, offset, chunk.length - offset)).bytesWritten;
    opts.onBytes?.(chunk.length);
  }
  return total;
}
