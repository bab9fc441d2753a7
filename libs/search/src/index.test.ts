import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FIELD_WEIGHTS, fold, MAX_QUERY_WORDS, MAX_TERMS_PER_ITEM, MAX_TOKEN_LENGTH, parseQuery, termScore, termWeights, titleSortKey, tokens, type IndexableItem } from './index.js';

const item = (over: Partial<IndexableItem>): IndexableItem => ({ title: '', tags: [], filename: '', description: '', meta: {}, ...over });

describe('fold', () => {
  it('lower-cases and removes accents and other marks', () => {
    assert.equal(fold('ÉLAN Crème Brûlée ÀÉÎÕÜ Ñandú'), 'elan creme brulee aeiou nandu');
    assert.equal(fold('e\u0301'), 'e', 'a combining accent');
    assert.equal(fold('İstanbul'), 'istanbul');
  });

  it('unifies compatibility forms', () => {
    assert.equal(fold('ﬁle ĳ x² Ⅻ ｆｕｌｌ'), 'file ij x2 xii full');
  });
});

describe('tokens', () => {
  it('splits on anything but letters and digits, after folding', () => {
    assert.deepEqual(tokens('Hello, World! 2024—L’Été_à-Paris'), ['hello', 'world', '2024', 'l', 'ete', 'a', 'paris']);
    assert.deepEqual(tokens('日本語 текст Ελληνικά'), ['日本語', 'текст', 'ελληνικα']);
  });

  it('has no tokens for text with no letters or digits', () => {
    assert.deepEqual(tokens(''), []);
    assert.deepEqual(tokens(' !?.,;:()[]{} — '), []);
  });

  it(`cuts tokens to ${MAX_TOKEN_LENGTH} characters`, () => {
    assert.deepEqual(tokens(`${'a'.repeat(50)} b`), ['a'.repeat(MAX_TOKEN_LENGTH), 'b']);
  });
});

describe('parseQuery', () => {
  it('takes the last word as a prefix while typing', () => {
    assert.deepEqual(parseQuery('Beethoven Sym'), { words: ['beethoven'], prefix: 'sym' });
    assert.deepEqual(parseQuery('Élan'), { words: [], prefix: 'elan' });
  });

  it('takes every word whole when the text ends with a space', () => {
    assert.deepEqual(parseQuery('Beethoven Sym '), { words: ['beethoven', 'sym'], prefix: null });
  });

  it('has no words for a query without letters or digits', () => {
    assert.deepEqual(parseQuery(''), { words: [], prefix: null });
    assert.deepEqual(parseQuery(' -- !! '), { words: [], prefix: null });
  });

  it('counts a repeated word once', () => {
    assert.deepEqual(parseQuery('moon Moon MOON river'), { words: ['moon'], prefix: 'river' });
  });

  it(`keeps the first ${MAX_QUERY_WORDS} words`, () => {
    const q = Array.from({ length: 12 }, (_, i) => `w${i}`).join(' ');
    assert.deepEqual(parseQuery(q), { words: ['w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6'], prefix: 'w7' });
  });
});

describe('termWeights', () => {
  it('sums the weights of the fields a term occurs in, once per field', () => {
    const w = termWeights(item({ title: 'Moon River moon', tags: ['moon', 'jazz'], filename: 'moon_river.mp3', description: 'a river song', meta: { artist: 'Moon', year: 1961, live: true } }));
    assert.equal(w.get('moon'), FIELD_WEIGHTS.title + FIELD_WEIGHTS.tags + FIELD_WEIGHTS.meta + FIELD_WEIGHTS.filename);
    assert.equal(w.get('river'), FIELD_WEIGHTS.title + FIELD_WEIGHTS.filename + FIELD_WEIGHTS.description);
    assert.equal(w.get('jazz'), FIELD_WEIGHTS.tags);
    assert.equal(w.get('song'), FIELD_WEIGHTS.description);
    assert.equal(w.has('mp3'), false, 'the extension is not a term');
    assert.equal(w.has('1961'), false, 'only string meta values are indexed');
    assert.equal(w.has('true'), false);
  });

  it('indexes each string meta value as its own words', () => {
    const w = termWeights(item({ meta: { artist: 'Moon', album: 'River' } }));
    assert.equal(w.get('moon'), FIELD_WEIGHTS.meta);
    assert.equal(w.get('river'), FIELD_WEIGHTS.meta);
    assert.equal(w.has('moonriver'), false);
  });

  it('drops only the last extension of a file name', () => {
    const w = termWeights(item({ filename: 'moon.river.flac' }));
    assert.deepEqual([...w.keys()].sort(), ['moon', 'river']);
    assert.equal(w.get('river'), FIELD_WEIGHTS.filename);
  });

  it(`indexes at most ${MAX_TERMS_PER_ITEM} distinct terms, still weighting the ones it has`, () => {
    const many = Array.from({ length: 500 }, (_, i) => `t${i}`).join(' ');
    const w = termWeights(item({ title: many, description: 't0 extra' }));
    assert.equal(w.size, MAX_TERMS_PER_ITEM);
    assert.equal(w.get('t0'), FIELD_WEIGHTS.title + FIELD_WEIGHTS.description);
    assert.equal(w.has('t400'), false);
    assert.equal(w.has('extra'), false);
  });
});

describe('termScore', () => {
  it('orders by weight first, then newest first', () => {
    const y2000 = Date.UTC(2000, 0, 1);
    const y2200 = Date.UTC(2200, 0, 1);
    assert.ok(termScore(2, y2000) > termScore(1, y2200));
    assert.ok(termScore(1, y2000 + 1) > termScore(1, y2000));
    assert.ok(termScore(1, y2200) - 1 < 1, 'the time part stays under one point');
  });
});

describe('titleSortKey', () => {
  it('orders titles alphabetically, ignoring case, accents and punctuation', () => {
    const titles = ['banana', 'Apple', 'ábc', 'apple pie', '1984', 'zebra', '"Abba"'];
    assert.deepEqual([...titles].sort((a, b) => titleSortKey(a) - titleSortKey(b)), ['1984', '"Abba"', 'ábc', 'Apple', 'apple pie', 'banana', 'zebra']);
    assert.equal(titleSortKey('Éclair'), titleSortKey('eclair'));
    assert.equal(titleSortKey('Hello, World'), titleSortKey('hello world'));
  });

  it('looks at the first 10 characters only and stays an exact integer', () => {
    assert.equal(titleSortKey('abcdefghijX'), titleSortKey('abcdefghijY'));
    assert.ok(titleSortKey('abcdefghi') < titleSortKey('abcdefghij'));
    const top = titleSortKey('zzzzzzzzzz');
    assert.ok(Number.isSafeInteger(top));
    assert.equal(top, 37 ** 10 - 1);
    assert.equal(titleSortKey(''), 0);
  });

  it('sorts a word that ends before a longer word with the same start (the gap between words counts as lowest)', () => {
    assert.equal(titleSortKey('a b'), 11 * 37 ** 9 + 0 * 37 ** 8 + 12 * 37 ** 7);
    assert.ok(titleSortKey('a z') < titleSortKey('ab'));
    assert.ok(titleSortKey('An Apple') < titleSortKey('Anchor'));
  });

  it('puts titles in other scripts after the Latin ones', () => {
    assert.ok(titleSortKey('жук') > titleSortKey('yyy'));
    assert.ok(titleSortKey('日本') > titleSortKey('yyy'));
  });
});
