import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createLogger } from '@nondivy/log';
import { ResumableHashes } from './resumable-hash.js';

const log = createLogger('test', 'silent');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('ResumableHashes', () => {
  const threaded = new ResumableHashes(log, 2);
  const inline = new ResumableHashes(log, 0);
  after(() => threaded.close());

  it('hashes on a thread as Node does, whatever the chunk sizes (batches of 1 MiB, partial and crossing)', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 12345);
    const hash = await threaded.open(null);
    let offset = 0;
    for (const size of [1, 65536, 1024 * 1024 - 7, 3 * 1024 * 1024, 17]) {
      await hash.update(data.subarray(offset, offset + size));
      offset += size;
    }
    await hash.update(data.subarray(offset));
    assert.equal(await hash.digest(), sha256(data));
  });

  it('a state saved on a thread continues inline, and the reverse, at any byte', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 99);
    for (const cut of [0, 1, 1024 * 1024, 2 * 1024 * 1024 + 5]) {
      const first = await threaded.open(null);
      await first.update(data.subarray(0, cut));
      const state = await first.save();
      first.close();
      const second = await inline.open(state);
      await second.update(data.subarray(cut, cut + 1000));
      const again = await threaded.open(await second.save());
      await again.update(data.subarray(cut + 1000));
      assert.equal(await again.digest(), sha256(data), `cut at ${cut}`);
    }
  });

  it('keeps concurrent hashes on the same threads apart', async () => {
    const files = Array.from({ length: 5 }, () => randomBytes(2 * 1024 * 1024 + 3));
    const digests = await Promise.all(
      files.map(async (file) => {
        const hash = await threaded.open(null);
        for (let i = 0; i < file.length; i += 300_000) await hash.update(file.subarray(i, i + 300_000));
        return hash.digest();
      }),
    );
    assert.deepEqual(digests, files.map(sha256));
  });

  it('a chunk may be reused by the caller as soon as update resolves', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const hash = await threaded.open(null);
    const scratch = Buffer.alloc(64 * 1024);
    for (let i = 0; i < data.length; i += scratch.length) {
      data.copy(scratch, 0, i, i + scratch.length);
      await hash.update(scratch);
      scratch.fill(0xaa);
    }
    assert.equal(await hash.digest(), sha256(data));
  });

  it('a session of a thread that died fails as unavailable, and the next opens a new thread', async () => {
    const own = new ResumableHashes(log, 1);
    try {
      const hash = await own.open(null);
      await hash.update(randomBytes(100));
      await own.close();
      await assert.rejects(hash.save(), (err: Error & { kind?: string }) => err.kind === 'unavailable');
      const next = await own.open(null);
      await next.update(Buffer.from('abc'));
      assert.equal(await next.digest(), sha256(Buffer.from('abc')));
    } finally {
      await own.close();
    }
  });
});
