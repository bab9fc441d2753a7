import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { contentDispositionFor } from './content-disposition.js';

/** Every byte of the header is printable ASCII: no CR/LF, no control character, nothing to mis-decode. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

describe('contentDispositionFor', () => {
  it('quotes a plain ASCII name as it is, with no filename* parameter', () => {
    assert.equal(contentDispositionFor('report 2024.pdf', 'attachment'), 'attachment; filename="report 2024.pdf"');
    assert.equal(contentDispositionFor('photo.png', 'inline'), 'inline; filename="photo.png"');
    assert.equal(contentDispositionFor("it's (1)*.txt", 'attachment'), `attachment; filename="it's (1)*.txt"`);
  });

  it('never puts a quote or a backslash inside the quoted fallback; filename* keeps the exact name', () => {
    assert.equal(contentDispositionFor('a"b.txt', 'attachment'), `attachment; filename="a_b.txt"; filename*=UTF-8''a%22b.txt`);
    assert.equal(contentDispositionFor('a\\b.txt', 'attachment'), `attachment; filename="a_b.txt"; filename*=UTF-8''a%5Cb.txt`);
    assert.equal(contentDispositionFor('x"; filename="evil.exe', 'inline'), `inline; filename="x_; filename=_evil.exe"; filename*=UTF-8''x%22%3B%20filename%3D%22evil.exe`);
  });

  it('replaces % in the fallback (some clients percent-decode it) and encodes it in filename*', () => {
    assert.equal(contentDispositionFor('100%.txt', 'attachment'), `attachment; filename="100_.txt"; filename*=UTF-8''100%25.txt`);
  });

  it('keeps control characters out of the header: replaced in the fallback, percent-encoded in filename*', () => {
    const header = contentDispositionFor('a\r\nSet-Cookie: x\u0000\u007f.txt', 'attachment');
    assert.equal(header, `attachment; filename="a__Set-Cookie: x__.txt"; filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x%00%7F.txt`);
    assert.match(header, PRINTABLE_ASCII);
  });

  it('strips accents for the fallback and gives the exact UTF-8 name in filename*', () => {
    assert.equal(contentDispositionFor('café.txt', 'attachment'), `attachment; filename="cafe.txt"; filename*=UTF-8''caf%C3%A9.txt`);
    assert.equal(contentDispositionFor('Ångström.pdf', 'inline'), `inline; filename="Angstrom.pdf"; filename*=UTF-8''%C3%85ngstr%C3%B6m.pdf`);
  });

  it('replaces other non-ASCII characters by _ in the fallback, one per UTF-16 unit', () => {
    assert.equal(contentDispositionFor('日本.txt', 'attachment'), `attachment; filename="download.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt`);
    assert.equal(contentDispositionFor('😀.png', 'attachment'), `attachment; filename="download.png"; filename*=UTF-8''%F0%9F%98%80.png`);
  });

  it("encodes ' ( ) * in filename* (not attr-chars of RFC 8187)", () => {
    assert.equal(contentDispositionFor("é'()*", 'attachment'), `attachment; filename="e'()*"; filename*=UTF-8''%C3%A9%27%28%29%2A`);
  });

  it('answers a name with a lone surrogate (possible in JSON) with U+FFFD in filename* instead of throwing', () => {
    assert.equal(contentDispositionFor('\ud800.txt', 'attachment'), `attachment; filename="download.txt"; filename*=UTF-8''%EF%BF%BD.txt`);
  });

  it('is pure printable ASCII whatever the name', () => {
    for (const name of ['\u202Egnp.exe', 'tab\there', 'ü\u0301', '\ud800', 'a;b=c', ' ', '']) {
      assert.match(contentDispositionFor(name, 'attachment'), PRINTABLE_ASCII, JSON.stringify(name));
    }
  });
});
