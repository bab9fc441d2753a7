import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { contentDispositionFor } from './content-disposition.js';
import { readableFallback, spellLatinLetters } from './content-disposition-fallback.js';

const fallbackOf = (name: string) => /filename="([^"]*)"/.exec(contentDispositionFor(name, 'attachment'))![1];

describe('the ASCII fallback of Content-Disposition', () => {
  it('is download.<ext> for a name in a script with no ASCII form; filename* keeps the exact name', () => {
    assert.equal(
      contentDispositionFor('日本語の本.txt', 'attachment'),
      `attachment; filename="download.txt"; filename*=UTF-8''${encodeURIComponent('日本語の本.txt')}`,
    );
    assert.equal(fallbackOf('Война и мир.epub'), 'download.epub');
    assert.equal(fallbackOf('Ελληνικά.PDF'), 'download.PDF');
    assert.equal(fallbackOf('😀.png'), 'download.png');
  });

  it('is download without an extension when there is none, or it is not ASCII, or too long', () => {
    assert.equal(fallbackOf('日本'), 'download');
    assert.equal(fallbackOf('日本.テキスト'), 'download');
    assert.equal(fallbackOf('日本.abcdefghijk'), 'download');
    assert.equal(fallbackOf('日本.abcdefghij'), 'download.abcdefghij');
    assert.equal(fallbackOf('.日本'), 'download');
  });

  it('keeps a stem that still has an ASCII letter or digit', () => {
    assert.equal(fallbackOf('日本 2024.txt'), '__ 2024.txt');
    assert.equal(fallbackOf('Москва-1.jpg'), '______-1.jpg');
  });

  it('spells out Latin letters that have no accent to strip', () => {
    assert.equal(fallbackOf('Straße.txt'), 'Strasse.txt');
    assert.equal(fallbackOf('Ærøskøbing Łódź.pdf'), 'AEroskobing Lodz.pdf');
    assert.equal(spellLatinLetters('þorn ı ð'), 'thorn i d');
    assert.equal(fallbackOf('café.txt'), 'cafe.txt');
  });

  it('never changes a plain ASCII name, even one with no letter or digit', () => {
    assert.equal(contentDispositionFor('___.txt', 'attachment'), 'attachment; filename="___.txt"');
    assert.equal(contentDispositionFor('-', 'inline'), 'inline; filename="-"');
    assert.equal(readableFallback('__.txt', '__.txt'), '__.txt');
  });

  it('spells out every Latin letter of its table, each its own way', () => {
    assert.equal(spellLatinLetters('ßẞæÆœŒøØłŁđĐðÐþÞıħĦ'), 'ssSSaeAEoeOEoOlLdDdDthThihH');
  });

  it('counts exactly 0-9, A-Z and a-z as letters or digits, in the stem and in the extension', () => {
    for (const c of ['0', '9', 'A', 'Z', 'a', 'z']) {
      assert.equal(readableFallback(`_${c}_.txt`, `日${c}本.txt`), `_${c}_.txt`, `stem ${c}`);
      assert.equal(readableFallback(`__.${c}`, `日本.${c}`), `download.${c}`, `extension ${c}`);
    }
    for (const c of ['/', ':', '@', '[', '`', '{']) {
      assert.equal(readableFallback(`_${c}_.txt`, `日${c}本.txt`), 'download.txt', `stem ${c}`);
      assert.equal(readableFallback(`__.${c}`, `日本.${c}`), 'download', `extension ${c}`);
    }
  });

  it('keeps an extension only when every one of its characters is a letter or digit', () => {
    assert.equal(readableFallback('__.a_b', '日本.a_b'), 'download');
    assert.equal(readableFallback('__.ab1', '日本.ab1'), 'download.ab1');
  });

  it('reads a name without a dot, or with one only in front, as all stem', () => {
    assert.equal(readableFallback('__a', '日本a'), '__a');
    assert.equal(readableFallback('.txt', '.txt\u0301'), '.txt');
  });
});
