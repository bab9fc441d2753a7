import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@nondivy/errors';
import { entryPath, folderOf, foldersOnTheWay, isFixedFolder, kindFolderPath, quotePath, resolvePath, subfolders, type KindPath } from './paths.js';

const refused = (message: RegExp) => (err: unknown) => err instanceof AppError && err.kind === 'bad_input' && message.test(err.message);

describe('resolvePath', () => {
  it('maps the fixed folders of the virtual tree', () => {
    assert.deepEqual(resolvePath('/', '/'), { type: 'root', path: '/' });
    assert.deepEqual(resolvePath('/', 'library'), { type: 'library', path: '/library' });
    assert.deepEqual(resolvePath('/', '/library/ebook'), { type: 'kind', path: '/library/ebook', kind: 'ebook' });
    assert.deepEqual(resolvePath('/', '/upload'), { type: 'upload', path: '/upload' });
    assert.deepEqual(resolvePath('/', '/library/audio/song.mp3'), { type: 'entry', path: '/library/audio/song.mp3', kind: 'audio', folder: '', name: 'song.mp3' });
    assert.deepEqual(resolvePath('/', '/upload/new.pdf'), { type: 'drop', path: '/upload/new.pdf', name: 'new.pdf' });
  });

  it('resolves relative paths against the working folder; no argument means the working folder', () => {
    assert.deepEqual(resolvePath('/library/video', 'clip.mkv'), { type: 'entry', path: '/library/video/clip.mkv', kind: 'video', folder: '', name: 'clip.mkv' });
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
    assert.deepEqual(resolvePath('/', '/upload/a/b'), { type: 'missing', path: '/upload/a/b' });
    assert.deepEqual(resolvePath('/', '/upload/a/b/c'), { type: 'missing', path: '/upload/a/b/c' });
    assert.deepEqual(resolvePath('/', '/etc/library/audio'), { type: 'missing', path: '/etc/library/audio' });
    assert.deepEqual(resolvePath('/', '/nope/x/y/z'), { type: 'missing', path: '/nope/x/y/z' });
    assert.deepEqual(resolvePath('/', '/library/nope/a/b'), { type: 'missing', path: '/library/nope/a/b' });
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

describe('folders below a kind', () => {
  it('resolves a path below a kind to a name in a folder (a folder or an item: the library decides)', () => {
    assert.deepEqual(resolvePath('/', '/library/audio/A'), { type: 'entry', path: '/library/audio/A', kind: 'audio', folder: '', name: 'A' });
    assert.deepEqual(resolvePath('/', '/library/audio/A/B'), { type: 'entry', path: '/library/audio/A/B', kind: 'audio', folder: 'A', name: 'B' });
    assert.deepEqual(resolvePath('/', '/library/audio/Miles Davis/Kind of Blue/01 So What.flac'), {
      type: 'entry',
      path: '/library/audio/Miles Davis/Kind of Blue/01 So What.flac',
      kind: 'audio',
      folder: 'Miles Davis/Kind of Blue',
      name: '01 So What.flac',
    });
  });

  it('resolves relative paths and `..` inside folders', () => {
    const cwd = '/library/ebook/Herbert/Dune';
    assert.deepEqual(resolvePath(cwd, 'Dune.epub'), { type: 'entry', path: '/library/ebook/Herbert/Dune/Dune.epub', kind: 'ebook', folder: 'Herbert/Dune', name: 'Dune.epub' });
    assert.deepEqual(resolvePath(cwd, '..'), { type: 'entry', path: '/library/ebook/Herbert', kind: 'ebook', folder: '', name: 'Herbert' });
    assert.deepEqual(resolvePath(cwd, '../..'), { type: 'kind', path: '/library/ebook', kind: 'ebook' });
    assert.deepEqual(resolvePath(cwd, '../../../audio/X/y.mp3'), { type: 'entry', path: '/library/audio/X/y.mp3', kind: 'audio', folder: 'X', name: 'y.mp3' });
    assert.deepEqual(resolvePath(cwd, './Sub//Deeper/'), { type: 'entry', path: '/library/ebook/Herbert/Dune/Sub/Deeper', kind: 'ebook', folder: 'Herbert/Dune/Sub', name: 'Deeper' });
    assert.deepEqual(resolvePath(cwd, ''), { type: 'entry', path: cwd, kind: 'ebook', folder: 'Herbert', name: 'Dune' });
  });

  it('keeps spaces and unicode in names, NFC', () => {
    assert.deepEqual(resolvePath('/', '/library/audio/Cafe\u0301 del Mar/ 1 .mp3'), {
      type: 'entry',
      path: '/library/audio/Caf\u00e9 del Mar/ 1 .mp3',
      kind: 'audio',
      folder: 'Caf\u00e9 del Mar',
      name: ' 1 .mp3',
    });
  });

  it('gives the folder a place names within its kind', () => {
    const at = (path: string) => resolvePath('/', path) as KindPath;
    assert.equal(folderOf(at('/library/audio')), '');
    assert.equal(folderOf(at('/library/audio/A')), 'A');
    assert.equal(folderOf(at('/library/audio/A/B')), 'A/B');
    assert.equal(folderOf(at('/library/audio/A/B/C d')), 'A/B/C d');
  });

  it('writes the paths of folders and names below a kind', () => {
    assert.equal(kindFolderPath('audio', ''), '/library/audio');
    assert.equal(kindFolderPath('audio', 'A/B'), '/library/audio/A/B');
    assert.equal(entryPath('video', '', 'x.mkv'), '/library/video/x.mkv');
    assert.equal(entryPath('video', 'S/1', 'x.mkv'), '/library/video/S/1/x.mkv');
  });

  it('lists the folders on the way to a folder, each with its parent and name', () => {
    assert.deepEqual(foldersOnTheWay(''), []);
    assert.deepEqual(foldersOnTheWay('A'), [{ folder: 'A', parent: '', name: 'A' }]);
    assert.deepEqual(foldersOnTheWay('A/B c/D'), [
      { folder: 'A', parent: '', name: 'A' },
      { folder: 'A/B c', parent: 'A', name: 'B c' },
      { folder: 'A/B c/D', parent: 'A/B c', name: 'D' },
    ]);
    assert.deepEqual(foldersOnTheWay('/A//B/'), [
      { folder: 'A', parent: '', name: 'A' },
      { folder: 'A/B', parent: 'A', name: 'B' },
    ], 'empty names are dropped');
  });
});

describe('the fixed folders of the virtual tree', () => {
  it('knows which places are fixed folders', () => {
    assert.deepEqual(
      ['/', '/library', '/upload', '/library/ebook', '/library/ebook/x', '/upload/x', '/nope'].map((p) => isFixedFolder(resolvePath('/', p))),
      [true, true, true, false, false, false, false],
    );
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
