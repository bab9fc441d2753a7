import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@nondivy/errors';
import { isFolder, quotePath, resolvePath, subfolders } from './paths.js';

const refused = (message: RegExp) => (err: unknown) => err instanceof AppError && err.kind === 'bad_input' && message.test(err.message);

describe('resolvePath', () => {
  it('maps the fixed folders of the virtual tree', () => {
    assert.deepEqual(resolvePath('/', '/'), { type: 'root', path: '/' });
    assert.deepEqual(resolvePath('/', 'library'), { type: 'library', path: '/library' });
    assert.deepEqual(resolvePath('/', '/library/ebook'), { type: 'kind', path: '/library/ebook', kind: 'ebook' });
    assert.deepEqual(resolvePath('/', '/upload'), { type: 'upload', path: '/upload' });
    assert.deepEqual(resolvePath('/', '/library/audio/song.mp3'), { type: 'item', path: '/library/audio/song.mp3', kind: 'audio', name: 'song.mp3' });
    assert.deepEqual(resolvePath('/', '/upload/new.pdf'), { type: 'drop', path: '/upload/new.pdf', name: 'new.pdf' });
  });

  it('resolves relative paths against the working folder; no argument means the working folder', () => {
    assert.deepEqual(resolvePath('/library/video', 'clip.mkv'), { type: 'item', path: '/library/video/clip.mkv', kind: 'video', name: 'clip.mkv' });
    assert.deepEqual(resolvePath('/library', null), { type: 'library', path: '/library' });
    assert.deepEqual(resolvePath('/library/image', undefined), { type: 'kind', path: '/library/image', kind: 'image' });
    assert.deepEqual(resolvePath('/library/image', ''), { type: 'kind', path: '/library/image', kind: 'image' });
    assert.deepEqual(resolvePath('/library', 'ebook/'), { type: 'kind', path: '/library/ebook', kind: 'ebook' }, 'a relative folder with a trailing slash');
    assert.deepEqual(resolvePath('/library/ebook', '/upload'), { type: 'upload', path: '/upload' }, 'an absolute path ignores the working folder');
  });

  it('stops `..` at the root (CDUP at /, and any number of them)', () => {
    for (const arg of ['..', '../..', '../../..', '/..', '/../../../../..']) {
      assert.deepEqual(resolvePath('/', arg), { type: 'root', path: '/' }, arg);
    }
  });

  it('goes up one folder per `..`, odd and even counts, then never past the root', () => {
    const cwd = '/library/book';
    assert.deepEqual(resolvePath('/library/ebook', '..'), { type: 'library', path: '/library' });
    assert.deepEqual(resolvePath('/library/ebook', '../..'), { type: 'root', path: '/' });
    assert.deepEqual(resolvePath('/library/ebook', '../../..'), { type: 'root', path: '/' });
    assert.deepEqual(resolvePath('/library/ebook', '../../../upload'), { type: 'upload', path: '/upload' });
    assert.deepEqual(resolvePath('/library/ebook', '../audio'), { type: 'kind', path: '/library/audio', kind: 'audio' });
    assert.deepEqual(resolvePath(cwd, '../../../../etc/passwd'), { type: 'missing', path: '/etc/passwd' });
    assert.deepEqual(resolvePath('/', '/upload/../../../etc/passwd'), { type: 'missing', path: '/etc/passwd' });
    assert.deepEqual(resolvePath('/', '/library/ebook/../../upload/x.txt'), { type: 'drop', path: '/upload/x.txt', name: 'x.txt' });
  });

  it('drops empty segments and `.` (`//`, trailing slashes)', () => {
    assert.deepEqual(resolvePath('/', '//library//ebook/'), { type: 'kind', path: '/library/ebook', kind: 'ebook' });
    assert.deepEqual(resolvePath('/', './library/./ebook/.'), { type: 'kind', path: '/library/ebook', kind: 'ebook' });
    assert.deepEqual(resolvePath('//', '///'), { type: 'root', path: '/' });
  });

  it('gives `missing` for anything outside the tree rather than failing', () => {
    assert.deepEqual(resolvePath('/', '/library/nope'), { type: 'missing', path: '/library/nope' });
    assert.deepEqual(resolvePath('/', '/library/ebook/a/b'), { type: 'missing', path: '/library/ebook/a/b' });
    assert.deepEqual(resolvePath('/', '/upload/a/b'), { type: 'missing', path: '/upload/a/b' });
    assert.deepEqual(resolvePath('/', '/etc'), { type: 'missing', path: '/etc' });
    assert.deepEqual(resolvePath('/', '...'), { type: 'missing', path: '/...' });
  });

  it('refuses NUL, other control characters and backslashes outright', () => {
    for (const arg of ['a\u0000b', '\u0000', 'x\ny', 'tab\there', 'del\u007f', '..\\..\\etc', '\\library', '/upload/a\rb']) {
      assert.throws(() => resolvePath('/', arg), refused(/control characters and backslashes/), JSON.stringify(arg));
    }
  });

  it('refuses a path over 4096 UTF-8 bytes', () => {
    assert.equal(resolvePath('/', `/upload/${'a'.repeat(4096 - 8)}`).type, 'drop');
    assert.throws(() => resolvePath('/', `/upload/${'a'.repeat(4096 - 7)}`), refused(/too long/));
    assert.throws(() => resolvePath('/', `/upload/${'é'.repeat(2045)}`), refused(/too long/), '4098 bytes in 2053 characters');
  });

  it('normalises names to NFC', () => {
    assert.deepEqual(resolvePath('/', '/upload/e\u0301t\u00e9.txt'), { type: 'drop', path: '/upload/\u00e9t\u00e9.txt', name: '\u00e9t\u00e9.txt' });
  });
});

describe('the folders of the virtual tree', () => {
  it('knows which places are folders', () => {
    assert.deepEqual(['/', '/library', '/library/ebook', '/upload', '/library/ebook/x', '/upload/x', '/nope'].map((p) => isFolder(resolvePath('/', p))), [true, true, true, true, false, false, false]);
  });

  it('lists the fixed subfolders of the root and of /library only', () => {
    assert.deepEqual(subfolders(resolvePath('/', '/')), ['library', 'upload']);
    assert.deepEqual(subfolders(resolvePath('/', '/library')), ['ebook', 'audio', 'video', 'image', 'document', 'software', 'other']);
    assert.deepEqual(subfolders(resolvePath('/', '/library/ebook')), []);
    assert.deepEqual(subfolders(resolvePath('/', '/upload')), []);
  });

  it('doubles quotes in a quoted path (RFC 959)', () => {
    assert.equal(quotePath('/upload/say "hi".txt'), '"/upload/say ""hi"".txt"');
    assert.equal(quotePath('/'), '"/"');
  });
});
