import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { OfferedFile } from '@nondivy/contracts';
import { messageOf } from './errors.js';
import { partName, placeWithoutOverwrite, removeQuietly, safeFilename, TooManyBytes, writeHashed } from './files.js';

/** A file that could not be received; `status` is what the direct endpoint answers. */
export class IncomingFailure extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'IncomingFailure';
  }
}

/**
 * Writes offered files into one folder: each under a hidden temporary name while its bytes arrive
 * and are hashed, then — size and SHA-256 checked — moved to its sanitised name (never over an
 * existing file). Any failure deletes the partial file.
 */
export class IncomingFiles {
  private readonly tempsInUse = new Set<string>();
  private readonly running = new Set<Promise<unknown>>();

  constructor(readonly dir: string) {}

  /** The final name an offered file gets (before numbering). */
  static nameOf(file: OfferedFile): string {
    return safeFilename(file.name);
  }

  private reserveTemp(name: string): string {
    for (let k = 0; ; k++) {
      const temp = join(this.dir, partName(name, k === 0 ? undefined : String(k)));
      if (!this.tempsInUse.has(temp)) {
        this.tempsInUse.add(temp);
        return temp;
      }
    }
  }

  /** Receives one file from `source`; resolves to where it was saved. */
  receive(file: OfferedFile, source: AsyncIterable<Uint8Array>, opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {}): Promise<string> {
    const p = this.write(file, source, opts);
    this.running.add(p);
    const forget = () => this.running.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Waits until no file is being written (their partial files deleted or moved in place). */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  private async write(file: OfferedFile, source: AsyncIterable<Uint8Array>, opts: { signal?: AbortSignal; onBytes?: (n: number) => void }): Promise<string> {
    const name = IncomingFiles.nameOf(file);
    const temp = this.reserveTemp(name);
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    let placed = false;
    let got = 0;
    try {
      handle = await open(temp, 'w');
      const hash = createHash('sha256');
      try {
        await writeHashed(source, handle, hash, {
          limit: file.size,
          signal: opts.signal,
          onBytes: (n) => {
            got += n;
            opts.onBytes?.(n);
          },
        });
      } catch (err) {
        if (err instanceof TooManyBytes) throw new IncomingFailure(`${name}: more bytes than the ${file.size} offered`, 413);
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw new IncomingFailure(`${name}: the sender went away after ${got} of ${file.size} bytes (${messageOf(err)})`, 400);
      }
      if (got !== file.size) throw new IncomingFailure(`${name}: ${got} of the ${file.size} offered bytes arrived`, 422);
      // A browser offers files without their digest: then the exact size is the check.
      if (file.sha256 && hash.digest('hex') !== file.sha256) throw new IncomingFailure(`${name}: the SHA-256 does not match the offer`, 422);
      await handle.sync();
      await handle.close();
      handle = undefined;
      const path = await placeWithoutOverwrite(temp, this.dir, name);
      placed = true;
      return path;
    } finally {
      await handle?.close().catch(() => undefined);
      if (!placed) await removeQuietly(temp);
      this.tempsInUse.delete(temp);
    }
  }
}
