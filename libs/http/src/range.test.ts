import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange } from './range.js';

const SIZE = 1000;

describe('parseRange', () => {
  it('ignores an absent, empty or oversized header (a full 200 answer)', () => {
    assert.equal(parseRange(undefined, SIZE), null);
    assert.equal(parseRange('', SIZE), null);
    assert.equal(parseRange(`bytes=0-1${',2-3'.repeat(500)}`, SIZE), null, 'over 2000 characters');
  });

  it('reads one closed range, in any case and with spaces around the unit', () => {
    assert.deepEqual(parseRange('bytes=0-99', SIZE), [{ start: 0, end: 99 }]);
    assert.deepEqual(parseRange(' Bytes = 10-10', SIZE), [{ start: 10, end: 10 }]);
  });

  it('reads an open range to the end and clamps an end past the content', () => {
    assert.deepEqual(parseRange('bytes=500-', SIZE), [{ start: 500, end: 999 }]);
    assert.deepEqual(parseRange('bytes=990-5000', SIZE), [{ start: 990, end: 999 }]);
  });

  it('reads suffix ranges as the last N bytes, all of them when N exceeds the size', () => {
    assert.deepEqual(parseRange('bytes=-100', SIZE), [{ start: 900, end: 999 }]);
    assert.deepEqual(parseRange('bytes=-5000', SIZE), [{ start: 0, end: 999 }]);
  });

  it('answers unsatisfiable when no range overlaps the content (416)', () => {
    assert.equal(parseRange('bytes=1000-', SIZE), 'unsatisfiable');
    assert.equal(parseRange('bytes=1000-2000', SIZE), 'unsatisfiable');
    assert.equal(parseRange('bytes=-0', SIZE), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable');
    assert.equal(parseRange('bytes=2000-3000,1000-', SIZE), 'unsatisfiable');
  });

  it('ignores malformed headers rather than failing the request', () => {
    for (const header of ['bytes=a-b', 'bytes=-', 'bytes=1-2-3', 'items=0-1', 'bytes', 'bytes=', 'bytes=-1-5', 'bytes=0x10-20', 'bytes=1.5-2', 'bytes=0-9,x']) {
      assert.equal(parseRange(header, SIZE), null, header);
    }
  });

  it('ignores a range whose end is before its start', () => {
    assert.equal(parseRange('bytes=5-4', SIZE), null);
    assert.equal(parseRange('bytes=0-9,50-40', SIZE), null);
  });

  it('refuses numbers longer than 15 digits (no precision loss past 2^53)', () => {
    assert.deepEqual(parseRange('bytes=0-999999999999999', SIZE), [{ start: 0, end: 999 }]);
    assert.equal(parseRange('bytes=0-1234567890123456', SIZE), null);
    assert.equal(parseRange('bytes=1234567890123456-', SIZE), null);
    assert.equal(parseRange('bytes=-99999999999999999999', SIZE), null);
  });

  it('sorts several ranges and merges overlapping, adjacent and contained ones', () => {
    assert.deepEqual(parseRange('bytes=20-29,0-9', SIZE), [{ start: 0, end: 9 }, { start: 20, end: 29 }]);
    assert.deepEqual(parseRange('bytes=0-10,5-20', SIZE), [{ start: 0, end: 20 }]);
    assert.deepEqual(parseRange('bytes=0-9,10-19', SIZE), [{ start: 0, end: 19 }]);
    assert.deepEqual(parseRange('bytes=0-100,10-20', SIZE), [{ start: 0, end: 100 }]);
    assert.deepEqual(parseRange('bytes=-10,0-0', SIZE), [{ start: 0, end: 0 }, { start: 990, end: 999 }]);
  });

  it('drops the unsatisfiable ranges of a list and skips empty elements', () => {
    assert.deepEqual(parseRange('bytes=0-9,5000-6000', SIZE), [{ start: 0, end: 9 }]);
    assert.deepEqual(parseRange('bytes=0-1,,3-4', SIZE), [{ start: 0, end: 1 }, { start: 3, end: 4 }]);
  });

  it('treats more than 50 listed ranges as no Range header', () => {
    const list = (n: number) => `bytes=${Array.from({ length: n }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',')}`;
    const fifty = parseRange(list(50), SIZE);
    assert.ok(Array.isArray(fifty));
    assert.equal(fifty.length, 50);
    assert.equal(parseRange(list(51), SIZE), null);
  });

  it('does not let a returned range alias another (merging copies)', () => {
    const r = parseRange('bytes=0-9,20-29', SIZE);
    assert.ok(Array.isArray(r));
    r[1]!.end = 0;
    assert.deepEqual(parseRange('bytes=0-9,20-29', SIZE), [{ start: 0, end: 9 }, { start: 20, end: 29 }]);
  });

  it('ignores an absent header, and one over 2000 characters even when well formed', () => {
    assert.equal(parseRange(undefined, SIZE), null);
    assert.equal(parseRange('', SIZE), null);
    const padded = (length: number) => `bytes=${' '.repeat(length - 'bytes=0-9'.length)}0-9`;
    assert.deepEqual(parseRange(padded(2000), SIZE), [{ start: 0, end: 9 }]);
    assert.equal(parseRange(padded(2001), SIZE), null);
  });

  it('reads the unit only at the start of the header and the list up to its end', () => {
    assert.equal(parseRange('xbytes=0-9', SIZE), null);
    assert.equal(parseRange('bytes=0-9\n', SIZE), null, 'a line break is not part of a range list');
    assert.deepEqual(parseRange('  BYTES = 0-9', SIZE), [{ start: 0, end: 9 }]);
  });

  it('allows spaces around the elements of a list', () => {
    assert.deepEqual(parseRange('bytes=0-9, 20-29 ,  40-49', SIZE), [{ start: 0, end: 9 }, { start: 20, end: 29 }, { start: 40, end: 49 }]);
  });
});
