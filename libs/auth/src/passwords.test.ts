import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashPassword, VerifiedPasswords } from './passwords.js';

const timed = async <T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> => {
  const start = performance.now();
  const value = await f();
  return { value, ms: performance.now() - start };
};

describe('VerifiedPasswords', () => {
  it('answers a password verified lately without a scrypt; wrong passwords and other hashes still cost one and fail', async () => {
    const stored = await hashPassword('right horse battery');
    const other = await hashPassword('another one');
    const cache = new VerifiedPasswords();
    const first = await timed(() => cache.verify('right horse battery', stored));
    assert.equal(first.value, true);
    const again = await timed(() => cache.verify('right horse battery', stored));
    assert.equal(again.value, true);
    // A scrypt takes tens of milliseconds; a cached answer is a keyed SHA-256.
    assert.ok(again.ms * 4 < first.ms, `cached ${again.ms.toFixed(2)} ms vs scrypt ${first.ms.toFixed(2)} ms`);
    const wrong = await timed(() => cache.verify('right horse batterY', stored));
    assert.equal(wrong.value, false);
    assert.ok(wrong.ms * 4 > first.ms, `a wrong password took ${wrong.ms.toFixed(2)} ms: it must cost a scrypt`);
    // A new password (a new stored hash) is not answered from the old entry.
    assert.equal(await cache.verify('right horse battery', other), false);
    assert.equal(await cache.verify('another one', other), true);
  });

  it('forgets entries after their time and past its size; concurrent checks of one password agree', async () => {
    const a = await hashPassword('a-password');
    const b = await hashPassword('b-password');
    const expired = new VerifiedPasswords(0);
    assert.equal(await expired.verify('a-password', a), true);
    const slow = await timed(() => expired.verify('a-password', a));
    assert.equal(slow.value, true);
    const small = new VerifiedPasswords(60_000, 1);
    assert.equal(await small.verify('a-password', a), true);
    assert.equal(await small.verify('b-password', b), true); // pushes a out
    const kept = await timed(() => small.verify('b-password', b));
    const evicted = await timed(() => small.verify('a-password', a));
    assert.ok(kept.ms * 4 < evicted.ms, `kept ${kept.ms.toFixed(2)} ms vs evicted ${evicted.ms.toFixed(2)} ms`);
    assert.ok(slow.ms > 4 * kept.ms, `an expired entry costs a scrypt (${slow.ms.toFixed(2)} ms)`);
    const cache = new VerifiedPasswords();
    const answers = await Promise.all([cache.verify('a-password', a), cache.verify('a-password', a), cache.verify('nope', a)]);
    assert.deepEqual(answers, [true, true, false]);
  });
});
