/**
 * The FTP door over the folder tree (`/library/<kind>/<folder…>/<name>`), against the real stack
 * (the standalone server as a child process, a real Redis, the fs driver) with real clients:
 * basic-ftp, curl, and a bare control connection for exact reply codes. What FTP does to folders
 * is what REST shows of the items.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ADMIN, curlFtp, dataSocket, download, files, ftpClient, ftpSite, listing, RawFtp, type FtpSite, type Item } from './helpers/ftp.js';
import { bearer, login } from './helpers/http.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A logged-in raw session (alice, bob, admin or anonymous). */
async function raw(s: FtpSite, who: 'alice' | 'bob' | 'admin' | 'anonymous'): Promise<RawFtp> {
  const c = await RawFtp.open(s.server.ftpPort);
  const password = who === 'admin' ? ADMIN : who === 'anonymous' ? 'guest@' : `${who}-password`;
  assert.equal((await c.login(who, password))?.code, 230);
  return c;
}

/** STOR over a raw session: the first reply, and the final one when the transfer started. */
async function stor(c: RawFtp, path: string, bytes: Buffer): Promise<{ first: string; last: string | null }> {
  const port = await c.epsv();
  const data = await dataSocket(port);
  const first = await c.send(`STOR ${path}`);
  if (first?.code !== 150) {
    data.destroy();
    return { first: first?.text ?? '', last: null };
  }
  data.end(bytes);
  return { first: first.text, last: (await c.next())?.text ?? null };
}

/** One MLSD line's facts by the entry's name. */
function facts(mlsd: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const line of mlsd.split('\r\n').filter(Boolean)) {
    const space = line.indexOf(' ');
    const f: Record<string, string> = {};
    for (const fact of line.slice(0, space).split(';').filter(Boolean)) {
      const [k, v] = fact.split('=');
      f[k!.toLowerCase()] = v!;
    }
    out.set(line.slice(space + 1), f);
  }
  return out;
}

describe('FTP over the folder tree', () => {
  let s: FtpSite;
  let alice: string;
  const byId = async (id: string) => {
    const res = await fetch(`${s.server.api}/library/${id}`);
    return { status: res.status, item: (res.status === 200 ? await res.json() : null) as Item | null };
  };
  const itemAt = async (path: string) => (await s.items()).find((i) => i.path === path);

  before(async () => {
    s = await ftpSite();
    alice = await login(s.server.api, 'alice', 'alice-password');
  });
  after(async () => s?.close());

  it('MKD makes nested folders (parents with them), CWD/CDUP/PWD walk them; what cannot be made is refused', async () => {
    const c = await raw(s, 'alice');
    try {
      const made = await c.send('MKD /library/audio/Miles Davis/Kind of Blue');
      assert.equal(made?.text, '257 "/library/audio/Miles Davis/Kind of Blue" created');
      assert.equal((await c.send('MKD /library/audio/Miles Davis/Kind of Blue'))?.code, 550, 'exists');
      assert.equal((await c.send('MKD /library/audio/Miles Davis'))?.code, 550, 'made with its child');
      assert.equal((await c.send('CWD /library/audio/Miles Davis/Kind of Blue'))?.code, 250);
      assert.equal((await c.send('PWD'))?.text, '257 "/library/audio/Miles Davis/Kind of Blue" is the current folder');
      assert.equal((await c.send('CDUP'))?.code, 250);
      assert.equal((await c.send('PWD'))?.text, '257 "/library/audio/Miles Davis" is the current folder');
      assert.equal((await c.send('MKD Sketches (1959)'))?.text, '257 "/library/audio/Miles Davis/Sketches (1959)" created', 'relative to the working folder');
      assert.equal((await c.send('CWD Sketches (1959)'))?.code, 250);
      assert.equal((await c.send('MKD say "hi"'))?.code, 553, 'a quote is no part of a name here');
      assert.equal((await c.send('CWD ../Nope'))?.code, 550, 'no such folder');
      assert.equal((await c.send('PWD'))?.text, '257 "/library/audio/Miles Davis/Sketches (1959)" is the current folder', 'a refused CWD stays');
      for (const where of ['/', '/library', '/upload', '/library/audio', '/upload/x', '/nope/x', '/library/nokind/x']) {
        assert.equal((await c.send(`MKD ${where}`))?.code, 550, where);
      }
      assert.equal((await c.send('MKD /library/audio/bad:name?'))?.code, 553, 'a name the library would change');
      assert.match((await c.send('MKD /library/audio/trailing.'))!.text, /^553 .*"trailing" would be/);
    } finally {
      c.close();
    }
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    try {
      await client.ensureDir('/library/ebook/Herbert/Dune'); // MKD and CWD per level, as basic-ftp does
      assert.equal(await client.pwd(), '/library/ebook/Herbert/Dune');
      assert.deepEqual((await client.list('/library/ebook/Herbert')).map((f) => [f.name, f.isDirectory]), [['Dune', true]]);
    } finally {
      client.close();
    }
    const anon = await raw(s, 'anonymous');
    try {
      assert.equal((await anon.send('MKD /library/audio/Anon'))?.code, 550);
      assert.match((await stor(anon, '/library/audio/Miles Davis/x.mp3', Buffer.from('x'))).first, /^550 .*anonymous/);
      assert.equal((await anon.send('CWD /library/ebook/Herbert/Dune'))?.code, 250, 'anonymous walks the tree');
    } finally {
      anon.close();
    }
  });

  it('STOR into folders (made when missing) by basic-ftp and curl; items carry their folder and path over REST', async () => {
    const flac = randomBytes(70_001);
    const epub = randomBytes(33_333);
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    try {
      const res = await client.uploadFrom(Readable.from([flac]), '/library/audio/Miles Davis/Kind of Blue/01 So What.flac');
      assert.match(res.message, /stored as \/library\/audio\/Miles Davis\/Kind of Blue\/01 So What\.flac/);
      await client.cd('/library/video');
      await client.uploadFrom(Readable.from([Buffer.from('episode')]), 'Show/Season 1/S01E01.mkv'); // relative, two new folders
      assert.deepEqual(await download(client, '/library/video/Show/Season 1/S01E01.mkv'), Buffer.from('episode'));
    } finally {
      client.close();
    }
    const viaCurl = curlFtp(['-u', 'alice:alice-password', '--ftp-create-dirs', '-T', '-', `ftp://127.0.0.1:${s.server.ftpPort}/library/ebook/Herbert/Dune%20Messiah/Dune%20Messiah.epub`], epub);
    assert.equal(viaCurl.status, 0, viaCurl.trace);

    const so = await itemAt('/library/audio/Miles Davis/Kind of Blue/01 So What.flac');
    assert.ok(so, 'listed over REST by its path');
    assert.equal(so.folder, 'Miles Davis/Kind of Blue');
    assert.equal(so.sha256, sha(flac));
    assert.deepEqual(await s.restBytes(so.id), flac);
    const messiah = await itemAt('/library/ebook/Herbert/Dune Messiah/Dune Messiah.epub');
    assert.equal(messiah?.folder, 'Herbert/Dune Messiah');
    assert.equal(messiah?.sha256, sha(epub));
    assert.equal((await itemAt('/library/video/Show/Season 1/S01E01.mkv'))?.folder, 'Show/Season 1');

    const back = curlFtp([`ftp://127.0.0.1:${s.server.ftpPort}/library/ebook/Herbert/Dune%20Messiah/Dune%20Messiah.epub`]);
    assert.equal(back.status, 0, back.trace);
    assert.equal(sha(back.out), sha(epub), 'curl walks the folders (CWD per level) and downloads');
  });

  it('LIST, NLST, MLSD and MLST of folders: subfolders (type=dir, perm facts per session), then items; a file path lists that file; folders are no files', async () => {
    const a = await raw(s, 'alice');
    const b = await raw(s, 'bob');
    const anon = await raw(s, 'anonymous');
    try {
      assert.equal((await a.send('MKD /library/audio/Miles Davis/Empty'))?.code, 257);
      const mine = facts(await listing(a, 'MLSD', '/library/audio/Miles Davis'));
      assert.deepEqual([...mine.keys()].sort(), ['Empty', 'Kind of Blue', 'Sketches (1959)']);
      assert.equal(mine.get('Kind of Blue')!.type, 'dir');
      assert.equal(mine.get('Kind of Blue')!.perm, 'elcmfp', 'enter, list, store, make folders, rename, delete inside');
      assert.equal(mine.get('Empty')!.perm, 'elcmfpd', 'an empty folder may be removed');
      assert.equal(facts(await listing(anon, 'MLSD', '/library/audio/Miles Davis')).get('Kind of Blue')!.perm, 'el');
      assert.equal(facts(await listing(a, 'MLSD', '/library/audio')).get('Miles Davis')!.type, 'dir');

      const blue = '/library/audio/Miles Davis/Kind of Blue';
      const song = facts(await listing(a, 'MLSD', blue)).get('01 So What.flac')!;
      assert.deepEqual([song.type, song.size, song.perm], ['file', '70001', 'rwdf'], 'the uploader may store onto it, delete and rename it');
      assert.equal(facts(await listing(b, 'MLSD', blue)).get('01 So What.flac')!.perm, 'r');

      const ls = await listing(a, 'LIST', '/library/audio/Miles Davis');
      assert.match(ls, /^drwxr-xr-x .* Kind of Blue\r$/m);
      assert.deepEqual((await listing(a, 'NLST', '/library/video/Show')).split('\r\n').filter(Boolean), ['Season 1']);
      const mixed = (await listing(a, 'NLST', '/library/video')).split('\r\n').filter(Boolean);
      assert.deepEqual(mixed, ['Show'], 'the kind\'s root lists its folders');

      // A file path: LIST lists that file; MLSD wants a folder; MLST of a folder and of a file.
      assert.match(await listing(a, 'LIST', `${blue}/01 So What.flac`), /^-rw-r--r-- 1 alice .* 70001 .* 01 So What\.flac\r\n$/);
      assert.equal((await a.send(`MLSD ${blue}/01 So What.flac`))?.code, 501);
      assert.match((await a.send(`MLST ${blue}`))!.text, /^250-.*\r\n type=dir;perm=elcmfp;modify=\d{14}; \/library\/audio\/Miles Davis\/Kind of Blue\r\n250 End$/);
      assert.match((await a.send(`MLST ${blue}/01 So What.flac`))!.text, /type=file;size=70001;perm=rwdf;/);
      assert.equal((await a.send('MLST /library/audio/Miles Davis/Nothing'))?.code, 550);
      assert.equal((await a.send('LIST /library/audio/Miles Davis/Nothing'))?.code, 550);

      for (const cmd of [`SIZE ${blue}`, `MDTM ${blue}`, `RETR ${blue}`]) assert.equal((await a.send(cmd))?.code, 550, cmd);
      const dele = await a.send(`DELE ${blue}`);
      assert.match(dele!.text, /^550 .*is a folder: use RMD/);
      assert.equal((await a.send(`CWD ${blue}/01 So What.flac`))?.code, 550, 'a file is no folder');
    } finally {
      for (const c of [a, b, anon]) c.close();
    }
  });

  it('listings of more than a page of subfolders are whole, and a listing\'s memory does not depend on the folder\'s size', async () => {
    const c = await raw(s, 'bob');
    try {
      for (let i = 0; i < 620; i++) {
        const r = await c.send(`MKD /library/other/Many/f${String(i).padStart(4, '0')}`);
        assert.equal(r?.code, 257, r?.text);
      }
      const names = (await listing(c, 'NLST', '/library/other/Many')).split('\r\n').filter(Boolean);
      assert.equal(names.length, 620);
      assert.equal(new Set(names).size, 620);
      assert.deepEqual(names.slice(0, 2), ['f0000', 'f0001'], 'folders come by name');
    } finally {
      c.close();
    }
  });

  it('RMD removes an empty folder; a folder holding anything, a file, a fixed folder and a missing one are refused', async () => {
    const a = await raw(s, 'alice');
    const anon = await raw(s, 'anonymous');
    try {
      assert.equal((await a.send('MKD /library/image/Trip'))?.code, 257);
      assert.equal((await a.send('MKD /library/image/Trip/Day 1'))?.code, 257);
      assert.equal((await anon.send('RMD /library/image/Trip/Day 1'))?.code, 550);
      assert.match((await a.send('RMD /library/image/Trip'))!.text, /^550 Folder not empty/, 'it holds a folder');
      assert.equal((await a.send('RMD /library/image/Trip/Day 1'))?.code, 250);
      assert.equal((await a.send('RMD /library/image/Trip'))?.code, 250);
      assert.equal((await a.send('CWD /library/image/Trip'))?.code, 550, 'gone');
      assert.equal((await a.send('RMD /library/image/Trip'))?.code, 550, 'missing');
      // A parent made along with its child (not by a MKD of its own) is there while it holds it.
      assert.equal((await a.send('MKD /library/image/Walk/Day 2'))?.code, 257);
      assert.equal((await a.send('RMD /library/image/Walk/Day 2'))?.code, 250);
      assert.equal((await a.send('CWD /library/image/Walk'))?.code, 550);
      assert.match((await a.send('RMD /library/audio/Miles Davis/Kind of Blue'))!.text, /^550 Folder not empty/, 'it holds an item');
      assert.equal((await a.send('RMD /library/audio/Miles Davis/Kind of Blue/01 So What.flac'))?.code, 550, 'a file');
      for (const where of ['/', '/library', '/upload', '/library/audio']) assert.equal((await a.send(`RMD ${where}`))?.code, 550, where);
    } finally {
      a.close();
      anon.close();
    }
    assert.ok(await itemAt('/library/audio/Miles Davis/Kind of Blue/01 So What.flac'), 'nothing removed with a refused RMD');
  });

  it('RNFR/RNTO moves a file across folders and kinds; a taken name or a folder\'s name is refused', async () => {
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    const a = await raw(s, 'alice');
    try {
      await client.uploadFrom(Readable.from([Buffer.from('notes')]), '/library/other/Inbox/draft notes.txt');
      const before = (await itemAt('/library/other/Inbox/draft notes.txt'))!;
      await client.rename('/library/other/Inbox/draft notes.txt', '/library/document/Work/2026/Final Notes.txt');
      const { item } = await byId(before.id);
      assert.deepEqual([item!.kind, item!.folder, item!.filename, item!.path, item!.title], ['document', 'Work/2026', 'Final Notes.txt', '/library/document/Work/2026/Final Notes.txt', 'Final Notes']);
      await assert.rejects(client.list('/library/other/Inbox'), /550/, 'the old folder went with its only item');
      assert.deepEqual(await download(client, '/library/document/Work/2026/Final Notes.txt'), Buffer.from('notes'));

      await client.uploadFrom(Readable.from([Buffer.from('other')]), '/library/document/Work/other.txt');
      assert.equal((await a.send('RNFR /library/document/Work/other.txt'))?.code, 350);
      assert.match((await a.send('RNTO /library/document/Work/2026/Final Notes.txt'))!.text, /^553 .*already exists/);
      assert.equal((await a.send('RNFR /library/document/Work/other.txt'))?.code, 350);
      assert.match((await a.send('RNTO /library/document/Work/2026'))!.text, /^553 .*is a folder/);
      assert.equal((await a.send('RNFR /library/document/Work/other.txt'))?.code, 350);
      assert.match((await a.send('RNTO /library/document/Work/other.txt/inside.txt'))!.text, /^553 .*is a file/, 'a folder through a file');
      assert.equal((await a.send('RNFR /library/document/Work/other.txt'))?.code, 350);
      assert.equal((await a.send('RNTO /upload/other.txt'))?.code, 553);
      assert.equal((await a.send('RNFR /library/document/Work/nothing.txt'))?.code, 550);
      assert.equal((await a.send('RNTO /library/document/x.txt'))?.code, 503, 'no RNFR pending after a refused one');
      assert.equal((await itemAt('/library/document/Work/other.txt'))?.size, 5, 'untouched by the refusals');
    } finally {
      client.close();
      a.close();
    }
  });

  it('RNFR/RNTO of a folder moves everything below it (paths over REST follow); other kinds, taken names and itself are refused', async () => {
    const a = await raw(s, 'alice');
    const b = await raw(s, 'bob');
    try {
      const so = (await itemAt('/library/audio/Miles Davis/Kind of Blue/01 So What.flac'))!;
      assert.equal((await a.send('RNFR /library/audio/Miles Davis'))?.code, 350);
      assert.equal((await a.send('RNTO /library/audio/Davis, Miles'))?.text, '250 Renamed to /library/audio/Davis, Miles');
      const { item } = await byId(so.id);
      assert.equal(item!.path, '/library/audio/Davis, Miles/Kind of Blue/01 So What.flac');
      assert.equal(item!.folder, 'Davis, Miles/Kind of Blue');
      assert.equal((await a.send('CWD /library/audio/Miles Davis'))?.code, 550);
      assert.deepEqual([...facts(await listing(a, 'MLSD', '/library/audio/Davis, Miles')).keys()].sort(), ['Empty', 'Kind of Blue', 'Sketches (1959)'], 'made folders moved too');

      assert.equal((await a.send('RNFR /library/audio/Davis, Miles'))?.code, 350);
      assert.match((await a.send('RNTO /library/video/Davis'))!.text, /^553 .*folders move within their kind/);
      assert.equal((await a.send('MKD /library/audio/Taken'))?.code, 257);
      assert.equal((await a.send('RNFR /library/audio/Davis, Miles'))?.code, 350);
      assert.match((await a.send('RNTO /library/audio/Taken'))!.text, /^553 .*exists already/);
      assert.equal((await a.send('RNFR /library/audio/Davis, Miles'))?.code, 350);
      assert.match((await a.send('RNTO /library/audio/Davis, Miles/Kind of Blue/Deeper'))!.text, /^553 .*into itself/);
      assert.equal((await a.send('RNFR /library/audio/Davis, Miles/Kind of Blue'))?.code, 350);
      assert.match((await a.send('RNTO /library/audio/Davis, Miles/Kind of Blue/01 So What.flac'))!.text, /^553 /, 'onto a file\'s name');
      assert.equal((await b.send('RNFR /library/audio/Davis, Miles'))?.code, 350);
      assert.equal((await b.send('RNTO /library/audio/Bobs'))?.code, 550, 'a member moves only folders of their own items');
      assert.equal((await a.send('RNFR /library/audio'))?.code, 550, 'a kind\'s folder stays');
      assert.equal((await byId(so.id)).item!.path, '/library/audio/Davis, Miles/Kind of Blue/01 So What.flac', 'unmoved by the refusals');
    } finally {
      a.close();
      b.close();
    }
  });

  it('STOR onto one\'s own path replaces the bytes (same item, tags kept, old bytes gone); onto another member\'s path or a folder\'s name: 553', async () => {
    const path = '/library/document/Reports/q1.pdf';
    const v1 = randomBytes(40_000);
    const v2 = randomBytes(41_234);
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    try {
      await client.uploadFrom(Readable.from([v1]), path);
    } finally {
      client.close();
    }
    const first = (await itemAt(path))!;
    const patched = await fetch(`${s.server.api}/library/${first.id}`, { method: 'PATCH', headers: { ...bearer(alice), 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['finance', 'q1'], description: 'first quarter' }) });
    assert.equal(patched.status, 200);
    const blobs = join(s.data.path, 'blobs');
    const holding = (bytes: Buffer) => files(blobs).filter((f) => readFileSync(f).equals(bytes));
    assert.equal(holding(v1).length, 1, 'the first bytes are on disk');

    const a = await raw(s, 'alice');
    try {
      const res = await stor(a, path, v2);
      assert.match(res.first, /^150 /);
      assert.match(res.last!, /^226 .*replaced .*\/library\/document\/Reports\/q1\.pdf/);
    } finally {
      a.close();
    }
    const { item } = await byId(first.id);
    assert.deepEqual([item!.id, item!.size, item!.sha256, item!.path], [first.id, v2.length, sha(v2), path]);
    assert.deepEqual(item!.tags, ['finance', 'q1'], 'tags kept');
    assert.equal((item as Item & { description: string }).description, 'first quarter');
    assert.deepEqual(await s.restBytes(first.id), v2);
    assert.equal((await s.items()).filter((i) => i.path === path).length, 1, 'no second item');
    assert.deepEqual(holding(v1), [], 'the old bytes are gone from the data folder');
    assert.equal(holding(v2).length, 1);

    const b = await raw(s, 'bob');
    try {
      const refused = await stor(b, path, Buffer.from('bob was here'));
      assert.match(refused.first, /^553 .*another member's/);
      assert.match((await stor(b, '/library/document/Reports', Buffer.from('x'))).first, /^553 .*is a folder/);
      assert.match((await stor(b, '/library/document/Reports/q1.pdf/inside.txt', Buffer.from('x'))).first, /^553 .*is a file/);
      assert.equal((await b.send(`APPE ${path}`))?.code, 550);
      assert.equal((await b.send('REST 10'))?.code, 350);
      assert.equal((await b.send(`STOR ${path}`))?.code, 550, 'a resumed upload stays refused');
    } finally {
      b.close();
    }
    const admin = await raw(s, 'admin');
    try {
      assert.match((await stor(admin, path, Buffer.from('admin fix'))).last!, /^226 .*replaced/, 'an admin may replace');
    } finally {
      admin.close();
    }
    assert.deepEqual(await s.restBytes(first.id), Buffer.from('admin fix'));
    assert.deepEqual(s.leftovers(), { leases: 0, tmp: [] }, 'nothing partial left by the refused uploads');
  });

  it('names with unicode and spaces, NFC whichever form is sent; a folder named like an existing file is refused everywhere', async () => {
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    try {
      const nfd = '/library/audio/Cafe\u0301 del Mar/Ça va — e\u0301te\u0301 1.mp3';
      await client.uploadFrom(Readable.from([Buffer.from('été')]), nfd);
      const item = await itemAt('/library/audio/Café del Mar/Ça va — été 1.mp3');
      assert.ok(item, 'stored under its NFC path');
      assert.equal(item.folder, 'Café del Mar');
      assert.deepEqual(await download(client, '/library/audio/Café del Mar/Ça va — été 1.mp3'), Buffer.from('été'));
      await client.cd('/library/audio/Cafe\u0301 del Mar');
      assert.equal(await client.pwd(), '/library/audio/Café del Mar');
      assert.deepEqual((await client.list()).map((f) => f.name), ['Ça va — été 1.mp3']);
    } finally {
      client.close();
    }
    const viaCurl = curlFtp([`ftp://127.0.0.1:${s.server.ftpPort}/library/audio/${encodeURIComponent('Café del Mar')}/${encodeURIComponent('Ça va — été 1.mp3')}`]);
    assert.equal(viaCurl.status, 0, viaCurl.trace);
    assert.equal(viaCurl.out.toString(), 'été');

    const a = await raw(s, 'alice');
    try {
      const file = '/library/audio/Café del Mar/Ça va — été 1.mp3';
      assert.equal((await a.send(`MKD ${file}`))?.code, 550, 'a folder of a file\'s name');
      assert.equal((await a.send(`MKD ${file}/Below`))?.code, 550, 'a folder through a file');
      assert.match((await stor(a, `${file}/below.mp3`, Buffer.from('x'))).first, /^553 /);
      assert.equal((await a.send('RNFR /library/audio/Davis, Miles/Empty'))?.code, 350);
      assert.match((await a.send(`RNTO ${file}`))!.text, /^553 /, 'a folder renamed onto a file\'s name');
      assert.deepEqual(s.leftovers(), { leases: 0, tmp: [] });
    } finally {
      a.close();
    }
    assert.deepEqual((await s.items()).filter((i) => i.folder.startsWith('Café del Mar/')), [], 'nothing stored below the file');
  });
});
