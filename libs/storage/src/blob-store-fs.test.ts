/**
 * The fs blob writer's promise to upload bodies that lend their chunks: a chunk is read until the
 * next `write` resolves, never later, whatever mix of large (written as they are), shared-memory and
 * small (gathered) chunks comes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from './blob-store-fs.js';

const TMP = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const KiB = 1024;

let dir: string;
let blobs: FsBlobStore;

before(async () => {
  dir = await mkdtemp(join(TMP, 'nondivy-blobs-'));
  blobs = new FsBlobStore(dir);
  await blobs.init();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A chunk of `size` random bytes, in shared memory (as a body read off its socket lends) or not. */
function chunk(size: number, shared: boolean): Buffer {
  const bytes = randomBytes(size);
  if (!shared) return bytes;
  const b = Buffer.from(new SharedArrayBuffer(size + 16), 8, size);
  bytes.copy(b);
  return b;
}

describe('FsBlobWriter', () => {
  const sequences: [string, [number, boolean][]][] = [
    ['shared, then small (a multipart delimiter held back), then shared', [[512 * KiB, true], [1, false], [512 * KiB, true], [3, false], [12, false], [400 * KiB, true]]],
    ['large, then small', [[300 * KiB, false], [10, false], [300 * KiB, false], [64 * KiB, false]]],
    ['small ones filling the gathering buffers between shared ones', [...Array.from({ length: 40 }, (_, i): [number, boolean] => [i % 5 === 0 ? 256 * KiB : 60 * KiB, i % 5 === 0]), [0, false], [7, true]]],
  ];
  for (const [name, sizes] of sequences) {
    it(`reads each chunk only until the next write resolves: ${name}`, async () => {
      const chunks = sizes.map(([size, shared]) => chunk(size, shared));
      const expected = Buffer.concat(chunks.map((c) => Buffer.from(c)));
      const w = blobs.begin();
      for (let k = 0; k < chunks.length; k++) {
        await w.write(chunks[k]!);
        // The lender may now reuse the chunk before this one: it does, at once.
        if (k > 0) chunks[k - 1]!.fill(0x5a);
      }
      await w.finish();
      const read: Buffer[] = [];
      for await (const c of await blobs.read(w.key)) read.push(c as Buffer);
      const got = Buffer.concat(read);
      assert.equal(got.length, expected.length, 'the blob holds every byte');
      assert.ok(got.equals(expected), 'the blob holds the bytes as they were when written, not as they were later');
    });
  }
});
