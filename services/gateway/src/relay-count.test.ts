import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { admitChunk, endedExactly } from './relay-count.js';

describe('the relay byte counter', () => {
  it('admits a chunk whole while it fits the offer, up to its last byte', () => {
    assert.deepEqual(admitChunk(0, 4, 10), { write: 4, over: false });
    assert.deepEqual(admitChunk(6, 4, 10), { write: 4, over: false }, 'exactly the room left');
    assert.deepEqual(admitChunk(10, 0, 10), { write: 0, over: false }, 'an empty chunk at the end');
    assert.deepEqual(admitChunk(0, 0, 0), { write: 0, over: false });
  });

  it('cuts a chunk that goes past the offer at the offer, and says so', () => {
    assert.deepEqual(admitChunk(6, 5, 10), { write: 4, over: true }, 'one byte too many');
    assert.deepEqual(admitChunk(0, 11, 10), { write: 10, over: true });
    assert.deepEqual(admitChunk(10, 1, 10), { write: 0, over: true }, 'no room left');
    assert.deepEqual(admitChunk(0, 1, 0), { write: 0, over: true }, 'an empty offer');
  });

  it('never admits a negative count, whatever the counter says', () => {
    assert.deepEqual(admitChunk(12, 3, 10), { write: 0, over: true });
  });

  it('a body ended exactly at the offer only', () => {
    assert.equal(endedExactly(10, 10), true);
    assert.equal(endedExactly(0, 0), true);
    assert.equal(endedExactly(9, 10), false);
    assert.equal(endedExactly(11, 10), false);
  });
});
