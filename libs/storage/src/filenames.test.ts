import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@nondivy/errors';
import { acceptedFilename, decodeFormFilename, requireAcceptedFilename, requireAcceptedFolder, safeFilename, titleFromFilename, truncateUtf8 } from './filenames.js';

describe('safeFilename', () => {
  it('keeps an ordinary name as it is', () => {
    assert.equal(safeFilename('Report 2024 (final).pdf'), 'Report 2024 (final).pdf');
    assert.equal(safeFilename('日本語のファイル.txt'), '日本語のファイル.txt');
  });

  it('keeps the last path segment only, with / and \\ both separators', () => {
    assert.equal(safeFilename('../../etc/passwd'), 'passwd');
    assert.equal(safeFilename('..\\..\\windows\\win.ini'), 'win.ini');
    assert.equal(safeFilename('C:\\Users\\me\\photo.jpg'), 'photo.jpg');
    assert.equal(safeFilename('dir/sub/'), 'sub');
  });

  it('removes control, bidi-override, zero-width and BOM characters', () => {
    assert.equal(safeFilename('a\u0000b\u001f\u007f\u0085c.txt'), 'abc.txt');
    assert.equal(safeFilename('invoice\u202Efdp.exe'), 'invoicefdp.exe');
    assert.equal(safeFilename('\uFEFF\u200Bname\u2066\u2069\u061C.txt'), 'name.txt');
  });

  it('replaces characters reserved on common file systems', () => {
    assert.equal(safeFilename('a:b*c?"d<e>f|g.txt'), 'a_b_c__d_e_f_g.txt');
  });

  it('collapses runs of white space and strips leading dots and trailing dots and spaces', () => {
    assert.equal(safeFilename('a \u00a0  b.txt'), 'a b.txt');
    assert.equal(safeFilename('.bashrc'), 'bashrc');
    assert.equal(safeFilename(' ...hidden'), 'hidden');
    assert.equal(safeFilename('name. . '), 'name');
  });

  it('prefixes Windows device names, with or without an extension, in any case', () => {
    assert.equal(safeFilename('CON'), '_CON');
    assert.equal(safeFilename('nul.txt'), '_nul.txt');
    assert.equal(safeFilename('com1.log'), '_com1.log');
    assert.equal(safeFilename('Lpt9'), '_Lpt9');
    assert.equal(safeFilename('console.txt'), 'console.txt');
    assert.equal(safeFilename('falcon'), 'falcon', 'a device name at the end of a word is not one');
    assert.equal(safeFilename('my.nul'), 'my.nul');
  });

  it('falls back when nothing is left', () => {
    for (const raw of [undefined, null, '', '...', '///', '\u0000\u202E', ' . ']) assert.equal(safeFilename(raw), 'file', JSON.stringify(raw));
    assert.equal(safeFilename('..', 'upload'), 'upload');
  });

  it('normalises to NFC', () => {
    assert.equal(safeFilename('e\u0301te\u0301.txt'), '\u00e9t\u00e9.txt');
  });

  it('cuts a name to 255 UTF-8 bytes and keeps its extension, never splitting a character', () => {
    const ascii = safeFilename(`${'a'.repeat(300)}.pdf`);
    assert.equal(ascii, `${'a'.repeat(251)}.pdf`);
    assert.equal(safeFilename(`${'é'.repeat(200)}.txt`), `${'é'.repeat(125)}.txt`);
    assert.equal(safeFilename(`${'😀'.repeat(100)}.mp3`), `${'😀'.repeat(62)}.mp3`);
  });

  it('keeps an extension of exactly 16 characters (dot included) when cutting', () => {
    const ext = `.${'b'.repeat(15)}`;
    assert.equal(safeFilename(`${'a'.repeat(300)}${ext}`), `${'a'.repeat(255 - 16)}${ext}`);
  });

  it('leaves a name of 255 bytes or less as it is, dots and spaces inside included', () => {
    assert.equal(safeFilename('a..txt'), 'a..txt');
    assert.equal(safeFilename('a .txt'), 'a .txt');
    const exact = `${'a'.repeat(250)} .txt`;
    assert.equal(Buffer.byteLength(exact), 255);
    assert.equal(safeFilename(exact), exact);
  });

  it('only trims the end of a cut stem, every dot and space of it', () => {
    assert.equal(safeFilename(`hello world${'a'.repeat(300)}.txt`), `hello world${'a'.repeat(240)}.txt`);
    assert.equal(safeFilename(`${'a'.repeat(249)} .${'x'.repeat(30)}.txt`), `${'a'.repeat(249)}.txt`);
  });

  it('does not keep an "extension" longer than 16 characters when cutting', () => {
    const name = safeFilename(`${'a'.repeat(300)}.${'b'.repeat(20)}`);
    assert.equal(name, 'a'.repeat(255));
  });

  it('does not leave a trailing dot or space where it cut', () => {
    assert.equal(safeFilename(`${'a'.repeat(250)} ...x${'y'.repeat(30)}.txt`), `${'a'.repeat(250)}.txt`);
  });
});

describe('requireAcceptedFilename (the rule every door shares)', () => {
  const refusal = (accepted: string | undefined) => (err: unknown) => {
    assert.ok(err instanceof AppError && err.kind === 'bad_input', String(err));
    assert.deepEqual(err.details, accepted === undefined ? undefined : { acceptedName: accepted });
    assert.equal(err.message, accepted === undefined ? 'File name not allowed' : `File name not allowed; "${accepted}" would be`);
    return true;
  };

  it('accepts a name the library stores as it is', () => {
    assert.equal(requireAcceptedFilename('Jazz Café Live.mp3'), 'Jazz Café Live.mp3');
    assert.equal(requireAcceptedFilename('Report 2024 (final).pdf'), 'Report 2024 (final).pdf');
  });

  it('normalises to NFC silently: the one change both doors make before the rule', () => {
    assert.equal(requireAcceptedFilename('Cafe\u0301.mp3'), 'Caf\u00e9.mp3');
    assert.equal(acceptedFilename('Cafe\u0301.mp3'), 'Caf\u00e9.mp3');
  });

  it('refuses reserved characters, naming the accepted name', () => {
    assert.throws(() => requireAcceptedFilename('a:b*c?d<e>f|g.txt'), refusal('a_b_c_d_e_f_g.txt'));
    assert.throws(() => requireAcceptedFilename('say "hi".txt'), refusal('say _hi_.txt'));
  });

  it('refuses white space runs, trailing spaces and dots, leading dots, path segments and controls', () => {
    assert.throws(() => requireAcceptedFilename('song.mp3 '), refusal('song.mp3'));
    assert.throws(() => requireAcceptedFilename(' song.mp3'), refusal('song.mp3'));
    assert.throws(() => requireAcceptedFilename('a  b.mp3'), refusal('a b.mp3'));
    assert.throws(() => requireAcceptedFilename('notes.'), refusal('notes'));
    assert.throws(() => requireAcceptedFilename('.hidden'), refusal('hidden'));
    assert.throws(() => requireAcceptedFilename('Music/song.mp3'), refusal('song.mp3'));
    assert.throws(() => requireAcceptedFilename('a\r\nb.txt'), refusal('ab.txt'));
    assert.throws(() => requireAcceptedFilename('con.txt'), refusal('_con.txt'));
  });

  it('refuses a name with nothing left, with no accepted name to offer', () => {
    assert.throws(() => requireAcceptedFilename('...'), refusal(undefined));
  });

  it('takes an empty name as no choice (the library then names the file)', () => {
    assert.equal(requireAcceptedFilename(''), '');
  });
});

describe('requireAcceptedFolder (the folder rule every door shares)', () => {
  const refusal = (message: string, accepted?: string) => (err: unknown) => {
    assert.ok(err instanceof AppError && err.kind === 'bad_input', String(err));
    assert.equal(err.message, message);
    assert.deepEqual(err.details, accepted === undefined ? undefined : { acceptedFolder: accepted });
    return true;
  };
  const notAllowed = (accepted?: string) => refusal(accepted === undefined ? 'Folder name not allowed' : `Folder name not allowed; "${accepted}" would be`, accepted);

  it('accepts folders whose every name the library keeps as it is: unicode, spaces, brackets', () => {
    assert.equal(requireAcceptedFolder('Miles Davis/Kind of Blue'), 'Miles Davis/Kind of Blue');
    assert.equal(requireAcceptedFolder('Musique/Café Müller/日本語 (1999)'), 'Musique/Café Müller/日本語 (1999)');
    assert.equal(requireAcceptedFolder('a.b/c d/😀'), 'a.b/c d/😀');
    assert.equal(requireAcceptedFolder('Single'), 'Single');
  });

  it("is the kind's root for an empty folder or slashes only", () => {
    assert.equal(requireAcceptedFolder(''), '');
    assert.equal(requireAcceptedFolder('/'), '');
    assert.equal(requireAcceptedFolder('///'), '');
  });

  it('drops empty names: leading, trailing and doubled slashes', () => {
    assert.equal(requireAcceptedFolder('/A/B/'), 'A/B');
    assert.equal(requireAcceptedFolder('A//B'), 'A/B');
    assert.equal(requireAcceptedFolder('//A///B//C//'), 'A/B/C');
  });

  it('normalises each name to NFC silently', () => {
    assert.equal(requireAcceptedFolder('Cafe\u0301/Re\u0301sume\u0301'), 'Caf\u00e9/R\u00e9sum\u00e9');
  });

  it('refuses a name the file name rule refuses, naming the accepted folder', () => {
    assert.throws(() => requireAcceptedFolder('A/B:C'), notAllowed('A/B_C'));
    assert.throws(() => requireAcceptedFolder('A /B'), notAllowed('A/B'));
    assert.throws(() => requireAcceptedFolder('A/ B'), notAllowed('A/B'));
    assert.throws(() => requireAcceptedFolder('x/.hidden/y'), notAllowed('x/hidden/y'));
    assert.throws(() => requireAcceptedFolder('con/aux'), notAllowed('_con/_aux'));
    assert.throws(() => requireAcceptedFolder('A\\B/C'), notAllowed('B/C'));
    assert.throws(() => requireAcceptedFolder('Music/a  b'), notAllowed('Music/a b'));
  });

  it('refuses . and .. as names: the accepted folder leaves them out, or there is none', () => {
    assert.throws(() => requireAcceptedFolder('a/../b'), notAllowed('a/b'));
    assert.throws(() => requireAcceptedFolder('./a'), notAllowed('a'));
    assert.throws(() => requireAcceptedFolder('a/.'), notAllowed('a'));
    assert.throws(() => requireAcceptedFolder('..'), notAllowed());
    assert.throws(() => requireAcceptedFolder('.'), notAllowed());
    assert.throws(() => requireAcceptedFolder('../..'), notAllowed());
    assert.throws(() => requireAcceptedFolder('\u202e'), notAllowed());
  });

  it('keeps 16 levels and refuses 17, whatever the names', () => {
    const deep = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`).join('/');
    assert.equal(requireAcceptedFolder(deep(16)), deep(16));
    assert.equal(requireAcceptedFolder(`/${deep(16)}//`), deep(16), 'empty names do not count');
    assert.throws(() => requireAcceptedFolder(deep(17)), refusal('Folder too deep: at most 16 levels'));
    assert.throws(() => requireAcceptedFolder(`${deep(16)}/x:`), refusal('Folder too deep: at most 16 levels'));
  });

  it('keeps 1024 bytes and refuses 1025, counted in UTF-8 with the slashes', () => {
    const path = (last: string) => [...Array.from({ length: 4 }, () => 'é'.repeat(100)), last].join('/');
    const fits = path('a'.repeat(220));
    assert.equal(Buffer.byteLength(fits), 1024);
    assert.equal(requireAcceptedFolder(fits), fits);
    const over = path('a'.repeat(221));
    assert.equal(Buffer.byteLength(over), 1025);
    assert.throws(() => requireAcceptedFolder(over), refusal('Folder path too long: at most 1024 bytes'));
    assert.throws(() => requireAcceptedFolder(`${over}/x:`), refusal('Folder path too long: at most 1024 bytes'));
    // Decomposed, the same folder is longer: the limit counts its NFC form.
    assert.equal(requireAcceptedFolder(fits.normalize('NFD')), fits);
  });
});

describe('decodeFormFilename', () => {
  it('decodes exactly the escapes of the HTML form encoding: %22, %0D, %0A', () => {
    assert.equal(decodeFormFilename('say %22hi%22.txt'), 'say "hi".txt');
    assert.equal(decodeFormFilename('a%0D%0Ab.txt'), 'a\r\nb.txt');
  });

  it('leaves every other percent sequence as it is', () => {
    assert.equal(decodeFormFilename('100%.txt'), '100%.txt');
    assert.equal(decodeFormFilename('a%20b%2F%25%0d%0a%22.txt'), 'a%20b%2F%25%0d%0a".txt');
    assert.equal(decodeFormFilename('%2522.txt'), '%2522.txt');
  });
});

describe('truncateUtf8', () => {
  it('keeps whole characters within the byte budget', () => {
    assert.equal(truncateUtf8('abc', 3), 'abc');
    assert.equal(truncateUtf8('abc', 2), 'ab');
    assert.equal(truncateUtf8('日本語', 7), '日本');
    assert.equal(truncateUtf8('😀😀', 5), '😀');
    assert.equal(truncateUtf8('😀', 3), '');
  });
});

describe('titleFromFilename', () => {
  it('is the stem with _ and . turned into single spaces', () => {
    assert.equal(titleFromFilename('my_holiday.photo.jpg'), 'my holiday photo');
    assert.equal(titleFromFilename('__a__b__.txt'), 'a b');
    assert.equal(titleFromFilename('README'), 'README');
    assert.equal(titleFromFilename('a  \t b.txt'), 'a b');
  });

  it('keeps a leading-dot name whole and falls back to the file name when the stem is empty', () => {
    assert.equal(titleFromFilename('.hidden'), 'hidden');
    assert.equal(titleFromFilename('___.mp3'), '___.mp3');
  });

  it('is at most 300 UTF-8 bytes', () => {
    assert.equal(titleFromFilename(`${'é'.repeat(200)}.txt`), 'é'.repeat(150));
  });
});
