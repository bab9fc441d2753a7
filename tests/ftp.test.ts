/**
 * The FTP front door against the real stack (the standalone server as a child process, a real Redis,
 * the fs driver and the S3 peer), with real clients: basic-ftp, curl, and a bare control connection
 * for what polite clients never send. One library: what goes in by one door comes out of the other.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ADMIN, curlFtp, dataSocket, download, files, ftpClient, ftpSite as site, listing, RawFtp, within, type FtpSite as Site, type Item } from './helpers/ftp.js';
import { passive, portClosed, readAll } from './helpers/ftp-passive.js';
import { bearer, upload } from './helpers/http.js';
import { tempDir } from './helpers/infra.js';
import { startServer } from './helpers/server.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
/**
 * Every test here takes seconds; one that waits for something that never comes fails after this
 * (named, with the rest of the file still run) instead of holding the whole run until CI's limit.
 */
const BOUNDED = { timeout: 120_000 };


describe('FTP and HTTP over one library (fs driver)', () => {
  let s: Site;
  let ftp: string;
  before(async () => {
    s = await site();
    ftp = `ftp://127.0.0.1:${s.server.ftpPort}`;
  });
  after(async () => s?.close());

  it('anonymous lists the tree and downloads, by basic-ftp (EPSV) and curl (PASV), what HTTP uploaded', BOUNDED, async () => {
    const bytes = randomBytes(3 * MiB + 12_345); // not a multiple of any buffer size
    const res = await upload(s.server.api, s.admin, bytes, 'Odd Sizes.pdf', {}, 'application/pdf');
    assert.equal(res.status, 201);
    const item = (await res.json()) as Item;
    assert.equal(item.kind, 'document');

    const client = await ftpClient(s.server.ftpPort);
    try {
      assert.deepEqual((await client.list('/')).map((f) => f.name).sort(), ['library', 'upload']);
      assert.deepEqual((await client.list('/library')).map((f) => f.name).sort(), ['audio', 'document', 'ebook', 'image', 'other', 'software', 'video']);
      const docs = await client.list('/library/document');
      const entry = docs.find((f) => f.name === 'Odd Sizes.pdf');
      assert.ok(entry, 'the item is listed under its kind');
      assert.equal(entry.size, bytes.length);
      assert.equal(sha(await download(client, '/library/document/Odd Sizes.pdf')), sha(bytes));
    } finally {
      client.close();
    }
    const viaPasv = curlFtp(['--disable-epsv', `${ftp}/library/document/Odd%20Sizes.pdf`]);
    assert.equal(viaPasv.status, 0, viaPasv.trace);
    assert.match(viaPasv.trace, /< 227 Entering Passive Mode/);
    assert.equal(sha(viaPasv.out), item.sha256);
  });

  it('a member uploads by FTP (STOR into /library/<kind>/ and into /upload/): same bytes and sha256 over HTTP, listed by both', BOUNDED, async () => {
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    const epub = randomBytes(MiB + 7);
    const song = randomBytes(200_001);
    try {
      const stored = await client.uploadFrom(Readable.from([epub]), '/library/ebook/Dune.epub');
      assert.equal(stored.code, 226);
      await client.cd('/upload');
      const dropped = await client.uploadFrom(Readable.from([song]), 'song.mp3');
      assert.match(dropped.message, /stored as \/library\/audio\/song\.mp3/);
      const listed = (await client.list('/library/ebook')).map((f) => f.name);
      assert.ok(listed.includes('Dune.epub'));
      const own = (await client.list('/upload')).map((f) => f.name);
      assert.deepEqual(own.slice(0, 2), ['song.mp3', 'Dune.epub'], 'the drop box lists her own items, newest first');
    } finally {
      client.close();
    }
    const dune = (await s.items('dune')).find((i) => i.filename === 'Dune.epub');
    assert.ok(dune, 'visible at once through REST search');
    assert.equal(dune.kind, 'ebook');
    assert.equal(dune.uploadedBy, 'alice');
    assert.equal(dune.sha256, sha(epub));
    assert.deepEqual(await s.restBytes(dune.id), epub);
    const mp3 = (await s.items('song')).find((i) => i.filename === 'song.mp3');
    assert.equal(mp3?.kind, 'audio', 'kind guessed from the file in /upload/');
    assert.equal(mp3?.sha256, sha(song));
  });

  it('zero-byte files both ways', BOUNDED, async () => {
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    try {
      await client.uploadFrom(Readable.from([]), '/library/other/empty.bin');
      assert.equal((await download(client, '/library/other/empty.bin')).length, 0);
      assert.equal(await client.size('/library/other/empty.bin'), 0);
    } finally {
      client.close();
    }
    const empty = (await s.items('empty')).find((i) => i.filename === 'empty.bin');
    assert.equal(empty?.size, 0);
    assert.equal(empty?.sha256, sha(Buffer.alloc(0)));
    const res = await upload(s.server.api, s.admin, Buffer.alloc(0), 'nothing.txt', {}, 'text/plain');
    assert.equal(res.status, 201);
    const viaFtp = curlFtp([`${ftp}/library/document/nothing.txt`]);
    assert.equal(viaFtp.status, 0, viaFtp.trace);
    assert.equal(viaFtp.out.length, 0);
  });

  it('SIZE, MDTM and REST+RETR resume a download (basic-ftp startAt, curl -C)', BOUNDED, async () => {
    const bytes = randomBytes(2 * MiB + 333);
    const item = (await (await upload(s.server.api, s.admin, bytes, 'resume.bin')).json()) as Item;
    const client = await ftpClient(s.server.ftpPort);
    try {
      assert.equal(await client.size('/library/other/resume.bin'), bytes.length);
      const modified = await client.lastMod('/library/other/resume.bin');
      const created = Date.parse(((await (await fetch(`${s.server.api}/library/${item.id}`)).json()) as { createdAt: string }).createdAt);
      assert.ok(Math.abs(modified.getTime() - created) < 1000, 'MDTM is the item creation time');
      const tail = await download(client, '/library/other/resume.bin', 1_000_001);
      assert.deepEqual(tail, bytes.subarray(1_000_001));
    } finally {
      client.close();
    }
    const out = tempDir();
    try {
      const file = join(out.path, 'part');
      writeFileSync(file, bytes.subarray(0, 777_777));
      const res = curlFtp(['-C', '-', '-o', file, `${ftp}/library/other/resume.bin`]);
      assert.equal(res.status, 0, res.trace);
      assert.match(res.trace, /> REST 777777/);
      assert.equal(sha(readFileSync(file)), sha(bytes));
    } finally {
      out.cleanup();
    }
    const beyond = await RawFtp.open(s.server.ftpPort);
    try {
      await beyond.login();
      assert.equal((await beyond.send(`REST ${bytes.length + 1}`))?.code, 350);
      await beyond.epsv();
      assert.equal((await beyond.send('RETR /library/other/resume.bin'))?.code, 554);
    } finally {
      beyond.close();
    }
  });

  it('active mode: PORT and EPRT to the client itself work (curl -P)', BOUNDED, async () => {
    const bytes = randomBytes(500_000);
    const up = await upload(s.server.api, s.admin, bytes, 'active.bin');
    assert.equal(up.status, 201, await up.text());
    const viaEprt = curlFtp(['-P', '127.0.0.1', `${ftp}/library/other/active.bin`]);
    assert.equal(viaEprt.status, 0, viaEprt.trace);
    assert.match(viaEprt.trace, /> EPRT \|1\|127\.0\.0\.1\|/);
    assert.equal(sha(viaEprt.out), sha(bytes));
    const viaPort = curlFtp(['-P', '127.0.0.1', '--disable-eprt', `${ftp}/library/other/active.bin`]);
    assert.equal(viaPort.status, 0, viaPort.trace);
    assert.match(viaPort.trace, /> PORT 127,0,0,1,/);
    assert.equal(sha(viaPort.out), sha(bytes));
  });

  it('two items with the same file name in one kind get distinct, stable names', BOUNDED, async () => {
    const a = randomBytes(1000);
    const b = randomBytes(2000);
    const first = (await (await upload(s.server.api, s.admin, a, 'same.iso', { kind: 'software' })).json()) as Item;
    const second = (await (await upload(s.server.api, s.admin, b, 'same.iso', { kind: 'software' })).json()) as Item;
    const client = await ftpClient(s.server.ftpPort);
    try {
      const names = (await client.list('/library/software')).map((f) => f.name).sort();
      const suffixed = `same (${second.id.slice(0, 6)}).iso`;
      assert.deepEqual(names, ['same.iso', suffixed].sort());
      assert.deepEqual(await download(client, '/library/software/same.iso'), a);
      assert.deepEqual(await download(client, `/library/software/${suffixed}`), b);
      // Deleting the first does not rename the second: a name keeps meaning the same item.
      const del = await fetch(`${s.server.api}/library/${first.id}`, { method: 'DELETE', headers: bearer(s.admin) });
      assert.equal(del.status, 204);
      assert.deepEqual((await client.list('/library/software')).map((f) => f.name), [suffixed]);
      assert.deepEqual(await download(client, `/library/software/${suffixed}`), b);
    } finally {
      client.close();
    }
  });

  it('RNFR/RNTO renames the file name (and a title that was the file name) and moves between kinds; anonymous cannot', BOUNDED, async () => {
    const bobs = await ftpClient(s.server.ftpPort, 'bob', 'bob-password');
    try {
      await bobs.uploadFrom(Readable.from([Buffer.from('chapter one')]), '/library/other/draft_notes.txt');
      await bobs.rename('/library/other/draft_notes.txt', '/library/document/Final Notes.txt');
      assert.deepEqual((await bobs.list('/library/other')).filter((f) => f.name.includes('notes')), []);
      assert.ok((await bobs.list('/library/document')).some((f) => f.name === 'Final Notes.txt'));
    } finally {
      bobs.close();
    }
    const item = (await s.items('final notes')).find((i) => i.filename === 'Final Notes.txt');
    assert.ok(item);
    assert.equal(item.kind, 'document');
    assert.equal(item.title, 'Final Notes');
    const anon = await RawFtp.open(s.server.ftpPort);
    try {
      await anon.login();
      assert.equal((await anon.send('RNFR /library/document/Final Notes.txt'))?.code, 550);
      assert.equal((await anon.send('DELE /library/document/Final Notes.txt'))?.code, 550);
      assert.equal((await anon.send('MKD /library/new'))?.code, 550);
      await anon.epsv();
      const stor = await anon.send('STOR /upload/evil.bin');
      assert.equal(stor?.code, 550);
      assert.match(stor!.text, /anonymous/);
    } finally {
      anon.close();
    }
    assert.ok((await s.items('final notes')).some((i) => i.id === item.id), 'still there');
  });

  it('DELE: members delete their own items only, admins any; STOR onto one\'s own name replaces it, onto another member\'s is refused', BOUNDED, async () => {
    const alice = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    const bob = await RawFtp.open(s.server.ftpPort);
    try {
      await alice.uploadFrom(Readable.from([Buffer.from('mine')]), '/library/other/alices.bin');
      const first = (await s.items('alices')).find((i) => i.filename === 'alices.bin')!;
      const again = await alice.uploadFrom(Readable.from([Buffer.from('again')]), '/library/other/alices.bin');
      assert.match(again.message, /replaced/);
      const replaced = (await s.items('alices')).filter((i) => i.filename === 'alices.bin');
      assert.deepEqual(replaced.map((i) => [i.id, i.size]), [[first.id, 5]], 'the same item, new bytes');
      assert.equal((await bob.login('bob', 'bob-password'))?.code, 230);
      await bob.epsv();
      assert.equal((await bob.send('STOR /library/other/alices.bin'))?.code, 553, 'another member\'s name');
      assert.equal((await bob.send('DELE /library/other/alices.bin'))?.code, 550);
      await alice.remove('/library/other/alices.bin');
      assert.ok(!(await s.items('alices')).some((i) => i.filename === 'alices.bin'));
      await alice.uploadFrom(Readable.from([Buffer.from('again')]), '/library/other/alices.bin');
    } finally {
      alice.close();
      bob.close();
    }
    const admin = await ftpClient(s.server.ftpPort, 'admin', ADMIN);
    try {
      await admin.remove('/library/other/alices.bin');
    } finally {
      admin.close();
    }
    assert.ok(!(await s.items('alices')).some((i) => i.filename === 'alices.bin'));
  });

  it('paths never leave the virtual tree; backslashes, NUL and control characters are refused', BOUNDED, async () => {
    const c = await RawFtp.open(s.server.ftpPort);
    try {
      await c.login();
      assert.equal((await c.send('CWD ../../../..'))?.code, 250);
      assert.match((await c.send('PWD'))!.text, /^257 "\/"/);
      assert.equal((await c.send('CWD //library//other/./'))?.code, 250);
      assert.match((await c.send('PWD'))!.text, /^257 "\/library\/other"/);
      assert.equal((await c.send('CDUP'))?.code, 250);
      assert.match((await c.send('PWD'))!.text, /"\/library"/);
      assert.equal((await c.send('SIZE ../../../../etc/passwd'))?.code, 550);
      assert.equal((await c.send('CWD /etc'))?.code, 550);
      assert.equal((await c.send('SIZE ..\\..\\etc\\passwd'))?.code, 553);
      c.write(Buffer.from('SIZE /library/other/a\u0000b\r\n'));
      assert.equal((await c.next())?.code, 553);
      assert.equal((await c.send('CWD /library/\u0007other'))?.code, 553);
      // A command split over several TCP segments is read whole.
      c.write('PW');
      await new Promise((r) => setTimeout(r, 50));
      c.write('D\r\n');
      assert.match((await c.next())!.text, /^257 "\/library"/);
    } finally {
      c.close();
    }
    const alice = await RawFtp.open(s.server.ftpPort);
    try {
      await alice.login('alice', 'alice-password');
      await alice.epsv();
      assert.equal((await alice.send('STOR /upload/../../etc/cron.d/x'))?.code, 553, 'a path that resolves outside the writable folders');
      assert.equal((await alice.send('STOR /library/other/a:b?.bin'))?.code, 553, 'a name the library would change');
    } finally {
      alice.close();
    }
  });

  it('CDUP, XCUP and `CWD ..` at the root stay at the root: PWD says / and LIST shows the root', BOUNDED, async () => {
    const client = await ftpClient(s.server.ftpPort);
    try {
      for (const command of ['CDUP', 'XCUP', 'CWD ..', 'CWD ../..']) {
        await client.cd('/');
        assert.equal((await client.send(command)).code, 250, command);
        assert.equal(await client.pwd(), '/', command);
        assert.deepEqual((await client.list()).map((f) => f.name).sort(), ['library', 'upload'], command);
      }
    } finally {
      client.close();
    }
  });

  it('an empty listing ends its data connection with nothing, also for a client that reads it only after the 226', BOUNDED, async () => {
    // The end of an empty data connection is emitted as soon as it arrives, read or not: a client
    // (like `listing` here) that turns to the data connection after reading 150 may find it ended.
    const anon = await RawFtp.open(s.server.ftpPort);
    try {
      assert.equal((await anon.login())?.code, 230);
      const data = await dataSocket(await anon.epsv());
      assert.equal((await anon.send('LIST /upload'))?.code, 150);
      assert.equal((await anon.next())?.code, 226);
      await within(5000, () => data.readableEnded);
      assert.equal((await readAll(data, 5000)).length, 0, 'read after its end: empty, at once');
      assert.equal(await listing(anon, 'NLST', '/upload'), '');
    } finally {
      anon.close();
    }
  });

  it('a command line longer than 8 KiB is refused and the connection closed', BOUNDED, async () => {
    const c = await RawFtp.open(s.server.ftpPort);
    await c.next();
    c.write(`USER ${'a'.repeat(10_000)}`);
    const r = await c.next();
    assert.equal(r?.code, 500);
    await within(3000, () => c.closed);
  });
});

describe('FTP hardening', () => {
  let s: Site;
  before(async () => {
    s = await site({
      NONDIVY_FTP_MAX_CONNECTIONS: '5',
      NONDIVY_FTP_MAX_CONNECTIONS_PER_IP: '3',
      NONDIVY_FTP_DATA_TIMEOUT_SECONDS: '1',
      NONDIVY_LOGIN_MAX_FAILURES: '3',
      NONDIVY_MAX_UPLOAD_BYTES: String(MiB),
    });
  });
  after(async () => s?.close());

  it('caps connections per address and in all (421), and frees a slot when a client leaves', BOUNDED, async () => {
    const open: RawFtp[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const c = await RawFtp.open(s.server.ftpPort, '127.0.0.1');
        assert.equal((await c.next())?.code, 220);
        open.push(c);
      }
      const fourth = await RawFtp.open(s.server.ftpPort, '127.0.0.1');
      const refused = await fourth.next();
      assert.equal(refused?.code, 421);
      assert.match(refused!.text, /from your address/);
      await within(3000, () => fourth.closed);
      for (let i = 0; i < 2; i++) {
        const c = await RawFtp.open(s.server.ftpPort, '127.0.0.2');
        assert.equal((await c.next())?.code, 220);
        open.push(c);
      }
      const sixth = await RawFtp.open(s.server.ftpPort, '127.0.0.3');
      const full = await sixth.next();
      assert.equal(full?.code, 421);
      assert.match(full!.text, /Too many connections to this server/);
      open.shift()!.close();
      await within(3000, async () => {
        const again = await RawFtp.open(s.server.ftpPort, '127.0.0.3');
        const r = await again.next();
        if (r?.code === 220) open.push(again);
        else again.close();
        return r?.code === 220;
      });
    } finally {
      for (const c of open) c.close();
    }
    // Let the server see those connections go before the next test connects.
    await within(3000, async () => {
      const probes = await Promise.all([1, 2, 3].map(() => RawFtp.open(s.server.ftpPort, '127.0.0.6')));
      const codes = await Promise.all(probes.map((p) => p.next().then((r) => r?.code)));
      for (const p of probes) p.close();
      return codes.every((c) => c === 220);
    });
    await new Promise((r) => setTimeout(r, 200));
  });

  it('bad logins are answered slower, then refused per address (421) with counters shared with REST', BOUNDED, async () => {
    const c = await RawFtp.open(s.server.ftpPort, '127.0.0.4');
    await c.next();
    const t0 = Date.now();
    await c.send('USER alice');
    assert.equal((await c.send('PASS wrong-1'))?.code, 530);
    await c.send('USER alice');
    assert.equal((await c.send('PASS wrong-2'))?.code, 530);
    assert.ok(Date.now() - t0 >= 700, 'each failure is answered more slowly');
    await c.send('USER alice');
    const locked = await c.send('PASS wrong-3');
    assert.equal(locked?.code, 421);
    await within(3000, () => c.closed);
    // The right password from the same address is refused now, by FTP and by REST.
    const d = await RawFtp.open(s.server.ftpPort, '127.0.0.4');
    await d.next();
    await d.send('USER alice');
    assert.equal((await d.send('PASS alice-password'))?.code, 421);
    d.close();
    const rest = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--interface', '127.0.0.4', '-H', 'content-type: application/json', '-d', '{"username":"alice","password":"alice-password"}', `${s.server.api}/auth/login`], { encoding: 'utf8' });
    assert.equal(rest.stdout, '429');
    // Another address is not affected.
    const e = await RawFtp.open(s.server.ftpPort, '127.0.0.5');
    assert.equal((await e.login('alice', 'alice-password'))?.code, 230);
    e.close();
    assert.ok(s.server.logs.some((l) => /FTP login refused/.test(l.msg)));
  });

  it('PORT/EPRT to another address or a privileged port are refused (no FTP bounce)', BOUNDED, async () => {
    const c = await RawFtp.open(s.server.ftpPort);
    try {
      await c.login();
      for (const cmd of ['PORT 127,0,0,2,200,10', 'PORT 10,0,0,1,200,10', 'EPRT |1|192.168.1.10|5000|', 'EPRT |2|::2|5000|', 'PORT 127,0,0,1,0,80', 'PORT 1,2,3', 'EPRT garbage']) {
        const r = await c.send(cmd);
        assert.ok(r && r.code >= 500 && r.code < 600, `${cmd} → ${r?.text}`);
      }
      assert.ok(s.server.logs.some((l) => /refused PORT/.test(l.msg)));
    } finally {
      c.close();
    }
  });

  it('a data connection from another address is dropped and the client\'s own transfer goes on', BOUNDED, async () => {
    const bytes = randomBytes(100_000);
    await upload(s.server.api, s.admin, bytes, 'guarded.bin');
    const c = await RawFtp.open(s.server.ftpPort);
    try {
      await c.login();
      const port = await c.epsv();
      const intruder = await dataSocket(port, '127.0.0.9');
      const intruderClosed = new Promise<void>((r) => intruder.once('close', () => r()));
      intruder.resume();
      await intruderClosed;
      const mine = await dataSocket(port);
      const got: Buffer[] = [];
      mine.on('data', (d: Buffer) => got.push(d));
      const ended = new Promise<void>((r) => mine.once('end', () => r()));
      assert.equal((await c.send('RETR /library/other/guarded.bin'))?.code, 150);
      assert.equal((await c.next())?.code, 226);
      await ended;
      assert.deepEqual(Buffer.concat(got), bytes);
      assert.ok(s.server.logs.some((l) => /refused a data connection from another address/.test(l.msg) && l.from === '127.0.0.9'));
    } finally {
      c.close();
    }
  });

  it('a stalled upload is stopped after the data timeout (426) and leaves nothing', BOUNDED, async () => {
    const before = (await s.items()).length;
    const c = await RawFtp.open(s.server.ftpPort);
    try {
      await c.login('alice', 'alice-password');
      const port = await c.epsv();
      const data = await dataSocket(port);
      assert.equal((await c.send('STOR /upload/stalled.bin'))?.code, 150);
      data.write(randomBytes(10_000));
      const t0 = Date.now();
      const r = await c.next(5000);
      assert.equal(r?.code, 426);
      assert.match(r!.text, /stalled/);
      assert.ok(Date.now() - t0 < 3000);
      data.destroy();
      assert.equal((await c.send('NOOP'))?.code, 200, 'the session goes on');
    } finally {
      c.close();
    }
    assert.equal((await s.items()).length, before);
    await within(3000, () => s.leftovers().leases === 0 && s.leftovers().tmp.length === 0);
  });

  it('a STOR over NONDIVY_MAX_UPLOAD_BYTES gets 552 and stores nothing', BOUNDED, async () => {
    const before = (await s.items()).length;
    const client = await ftpClient(s.server.ftpPort, 'bob', 'bob-password');
    try {
      await assert.rejects(client.uploadFrom(Readable.from([randomBytes(2 * MiB)]), '/upload/too-big.bin'), (err: Error & { code?: number }) => {
        assert.equal(err.code, 552);
        assert.match(err.message, /1048576 bytes/);
        return true;
      });
    } finally {
      client.close();
    }
    const viaCurl = curlFtp(['-u', 'bob:bob-password', '-T', '-', `ftp://127.0.0.1:${s.server.ftpPort}/upload/too-big-too.bin`], randomBytes(3 * MiB));
    assert.notEqual(viaCurl.status, 0);
    assert.match(viaCurl.trace, /< 552 Exceeded storage allocation/);
    assert.equal((await s.items()).length, before);
    await within(3000, () => s.leftovers().leases === 0 && s.leftovers().tmp.length === 0);
  });

  it('uploads that fail are never committed: data connection reset, control connection dropped, ABOR', BOUNDED, async () => {
    const before = (await s.items()).length;
    // 1. The data connection is reset mid-upload.
    const c1 = await RawFtp.open(s.server.ftpPort);
    await c1.login('alice', 'alice-password');
    const d1 = await dataSocket(await c1.epsv());
    assert.equal((await c1.send('STOR /upload/reset.bin'))?.code, 150);
    d1.write(randomBytes(200_000));
    await new Promise((r) => setTimeout(r, 100));
    d1.resetAndDestroy();
    assert.equal((await c1.next())?.code, 426);
    c1.close();
    // 2. The client vanishes: control connection closed, then the data connection ends "cleanly".
    const c2 = await RawFtp.open(s.server.ftpPort);
    await c2.login('alice', 'alice-password');
    const d2 = await dataSocket(await c2.epsv());
    assert.equal((await c2.send('STOR /upload/vanished.bin'))?.code, 150);
    d2.write(randomBytes(200_000));
    await new Promise((r) => setTimeout(r, 100));
    c2.close();
    await new Promise((r) => setTimeout(r, 100));
    d2.end();
    // 3. ABOR while the upload runs.
    const c3 = await RawFtp.open(s.server.ftpPort);
    await c3.login('alice', 'alice-password');
    const d3 = await dataSocket(await c3.epsv());
    assert.equal((await c3.send('STOR /upload/aborted.bin'))?.code, 150);
    d3.write(randomBytes(200_000));
    await new Promise((r) => setTimeout(r, 100));
    c3.write(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
    assert.equal((await c3.next())?.code, 426);
    assert.equal((await c3.next())?.code, 226);
    d3.destroy();
    c3.close();
    await within(5000, () => s.leftovers().leases === 0 && s.leftovers().tmp.length === 0);
    const now = await s.items();
    assert.equal(now.length, before);
    assert.ok(!now.some((i) => /reset|vanished|aborted/.test(i.filename)));
  });

  it('replies never show internal paths or errors: a blob gone from disk, Redis gone (then back)', BOUNDED, async () => {
    const bytes = randomBytes(10_000);
    const item = (await (await upload(s.server.api, s.admin, bytes, 'vanishing.bin')).json()) as Item;
    const blobFiles = files(join(s.data.path, 'blobs', 'objects'));
    const blob = blobFiles.find((f) => statSync(f).size === bytes.length && sha(readFileSync(f)) === item.sha256);
    assert.ok(blob);
    rmSync(blob);
    const c = await RawFtp.open(s.server.ftpPort);
    try {
      await c.login();
      await c.epsv();
      const r = await c.send('RETR /library/other/vanishing.bin');
      assert.ok(r && r.code >= 400, r?.text);
      assert.doesNotMatch(r!.text, /\/tmp|blobs|objects|ENOENT|Error:|at .*\.(ts|js)/);
      await s.redis.stop();
      const down = await c.send('SIZE /library/other/guarded.bin', 6000);
      assert.equal(down?.code, 451);
      assert.doesNotMatch(down!.text, /ECONNREFUSED|127\.0\.0\.1|Error:|at .*\.(ts|js)/);
      await s.redis.start();
      await within(8000, async () => (await c.send('SIZE /library/other/guarded.bin'))?.code === 213);
    } finally {
      c.close();
    }
  });
});

describe('FTP passive ports shared fairly between addresses, and the command line cap', () => {
  let s: Site;
  /** The default share: a quarter of the range (the test range has 8 ports: 2 each). */
  let share: number;
  before(async () => {
    s = await site({ NONDIVY_FTP_PASV_TIMEOUT_SECONDS: '1', NONDIVY_FTP_DATA_TIMEOUT_SECONDS: '10' });
    const [first, last] = s.server.pasvRange.split('-').map(Number) as [number, number];
    share = Math.max(1, Math.floor((last - first + 1) / 4));
  });
  after(async () => s?.close());

  async function sessions(address: string, n: number): Promise<RawFtp[]> {
    const out: RawFtp[] = [];
    for (let i = 0; i < n; i++) {
      const c = await RawFtp.open(s.server.ftpPort, address);
      assert.equal((await c.login())?.code, 230);
      out.push(c);
    }
    return out;
  }

  it('one address holds at most its share of passive ports (PASV and EPSV); another address still gets one and can LIST and RETR; active mode is unaffected', BOUNDED, async () => {
    const bytes = randomBytes(50_000);
    await upload(s.server.api, s.admin, bytes, 'fair.bin');
    const open: RawFtp[] = [];
    try {
      // Three addresses, four sessions each, every session asking for a passive port.
      for (const address of ['127.0.0.21', '127.0.0.22', '127.0.0.23']) {
        const mine = await sessions(address, 4);
        open.push(...mine);
        let granted = 0;
        for (const [i, c] of mine.entries()) {
          const { reply, port } = await passive(c, i % 2 ? 'EPSV' : 'PASV');
          if (port) granted++;
          else {
            assert.equal(reply?.code, 451, reply?.text);
            assert.match(reply!.text, /your address/);
          }
        }
        assert.equal(granted, share, `${address} holds ${granted} passive ports`);
      }
      // Another address gets a port and transfers.
      const victim = (await sessions('127.0.0.24', 1))[0]!;
      open.push(victim);
      const list = await passive(victim, 'PASV');
      assert.ok(list.port, list.reply?.text);
      const listData = await dataSocket(list.port, '127.0.0.24');
      const listing = readAll(listData);
      assert.equal((await victim.send('LIST /library/other'))?.code, 150);
      assert.equal((await victim.next())?.code, 226);
      assert.match((await listing).toString(), /fair\.bin/);
      const retr = await passive(victim, 'EPSV');
      assert.ok(retr.port, retr.reply?.text);
      const retrData = await dataSocket(retr.port, '127.0.0.24');
      const got = readAll(retrData);
      assert.equal((await victim.send('RETR /library/other/fair.bin'))?.code, 150);
      assert.equal((await victim.next())?.code, 226);
      assert.deepEqual(await got, bytes);
      // Active mode uses no passive port: an address at its share still transfers with PORT.
      const sink = createServer();
      await new Promise<void>((r) => sink.listen(0, '127.0.0.21', () => r()));
      try {
        const p = (sink.address() as { port: number }).port;
        const received = new Promise<Buffer>((r) => sink.once('connection', (sock) => r(readAll(sock))));
        const active = open[0]!;
        assert.equal((await active.send(`PORT 127,0,0,21,${p >> 8},${p & 255}`))?.code, 200);
        assert.equal((await active.send('RETR /library/other/fair.bin'))?.code, 150);
        assert.equal((await active.next())?.code, 226);
        assert.deepEqual(await received, bytes);
      } finally {
        sink.close();
      }
    } finally {
      for (const c of open) c.close();
    }
    assert.ok(s.server.logs.some((l) => /refused a passive port: the client address holds its share/.test(l.msg) && l.client === '127.0.0.21'));
  });

  it('a session holds one passive port however often it asks, and a port nobody connects to is freed after the deadline', BOUNDED, async () => {
    const [a, b, c] = await sessions('127.0.0.31', 3);
    try {
      const ports: number[] = [];
      for (let i = 0; i < 5; i++) {
        const { port, reply } = await passive(a!, i % 2 ? 'EPSV' : 'PASV');
        assert.ok(port, reply?.text);
        ports.push(port);
      }
      for (const p of ports.slice(0, -1)) assert.ok(await portClosed(p), `the earlier listener on ${p} is closed`);
      // The session holds one port of its address's share: a second session gets the other...
      assert.ok((await passive(b!, 'EPSV')).port);
      // ...and a third is over the share.
      assert.equal((await passive(c!, 'PASV')).reply?.code, 451);
      // Nobody connects: after the deadline (1 s here) the ports are free, and the share with them.
      const t0 = Date.now();
      const waited = await within(5000, () => portClosed(ports.at(-1)!));
      assert.ok(Date.now() - t0 < 2500 && waited >= 0, `freed after ${waited} ms`);
      const again = await passive(c!, 'PASV');
      assert.ok(again.port, again.reply?.text);
      // The session whose port expired is told so when it transfers, and goes on.
      assert.equal((await a!.send('LIST'))?.code, 425);
      assert.equal((await a!.send('NOOP'))?.code, 200);
    } finally {
      for (const x of [a, b, c]) x?.close();
    }
  });

  it('a command line over 8 KiB is refused (500) without echo and the connection closed, however it arrives', BOUNDED, async () => {
    const long = 'a'.repeat(9000);
    // One line in one segment.
    const one = await RawFtp.open(s.server.ftpPort);
    await one.next();
    one.write(`USER ${long}\r\n`);
    const r1 = await one.next();
    assert.equal(r1?.code, 500, r1?.text);
    assert.ok(!r1!.text.includes('aaaaaaaa'), 'the line is not echoed');
    await within(3000, () => one.closed);
    // Among other lines in one segment: those before it are answered, nothing after it is run.
    const many = await RawFtp.open(s.server.ftpPort);
    await many.next();
    many.write(`NOOP\r\nUSER ${long}\r\nUSER anonymous\r\n`);
    assert.equal((await many.next())?.code, 200);
    const r2 = await many.next();
    assert.equal(r2?.code, 500, r2?.text);
    assert.ok(!r2!.text.includes('aaaaaaaa'));
    assert.equal(await many.next(), null, 'nothing after the over-long line is answered');
    // Split over segments, the end of the line in the last one.
    const split = await RawFtp.open(s.server.ftpPort);
    await split.next();
    split.write(`USER ${long.slice(0, 5000)}`);
    await new Promise((r) => setTimeout(r, 50));
    split.write(`${long.slice(5000)}\r\n`);
    const r3 = await split.next();
    assert.equal(r3?.code, 500, r3?.text);
    assert.ok(!r3!.text.includes('aaaaaaaa'));
    await within(3000, () => split.closed);
    // A line of exactly 8 KiB is still a command.
    const edge = await RawFtp.open(s.server.ftpPort);
    try {
      await edge.login();
      const cmd = 'SIZE /library/other/';
      const r4 = await edge.send(cmd + 'b'.repeat(8192 - cmd.length));
      assert.ok(r4 && r4.code !== 500 && r4.code >= 500, r4?.text);
      assert.equal((await edge.send('NOOP'))?.code, 200);
    } finally {
      edge.close();
    }
  });
});

describe('FTP idle timeout and graceful shutdown', () => {
  let s: Site;
  before(async () => {
    s = await site({ NONDIVY_FTP_IDLE_SECONDS: '1' });
  });
  after(async () => s?.close());

  it('closes an idle control connection with 421', BOUNDED, async () => {
    const c = await RawFtp.open(s.server.ftpPort);
    await c.login();
    const t0 = Date.now();
    const r = await c.next(5000);
    assert.equal(r?.code, 421);
    assert.match(r!.text, /Idle/);
    assert.ok(Date.now() - t0 >= 900);
    await within(2000, () => c.closed);
  });

  it('a long transfer is not cut by the idle timeout', BOUNDED, async () => {
    const bytes = randomBytes(4 * MiB);
    const c = await RawFtp.open(s.server.ftpPort);
    await c.login('alice', 'alice-password');
    const d = await dataSocket(await c.epsv());
    assert.equal((await c.send('STOR /upload/slow.bin'))?.code, 150);
    for (let i = 0; i < 6; i++) {
      d.write(bytes.subarray(i * (bytes.length / 8), (i + 1) * (bytes.length / 8)));
      await new Promise((r) => setTimeout(r, 300)); // 1.8 s in all: longer than the idle timeout
    }
    d.end(bytes.subarray((6 * bytes.length) / 8));
    const r = await c.next();
    assert.equal(r?.code, 226);
    c.close();
    assert.equal((await s.items('slow')).find((i) => i.filename === 'slow.bin')?.sha256, sha(bytes));
  });

  it('SIGTERM during an upload: the client is told, nothing is committed, the process exits 0 after its own shutdown', BOUNDED, async () => {
    const before = (await s.items()).length;
    const c = await RawFtp.open(s.server.ftpPort);
    await c.login('alice', 'alice-password');
    const d = await dataSocket(await c.epsv());
    d.on('error', () => undefined);
    assert.equal((await c.send('STOR /upload/interrupted.bin'))?.code, 150);
    const writer = setInterval(() => d.writable && d.write(randomBytes(64 * 1024)), 20);
    await new Promise((r) => setTimeout(r, 200));
    const code = await s.server.stop();
    clearInterval(writer);
    assert.equal(code, 0);
    const replies = [await c.next(2000).catch(() => null), await c.next(2000).catch(() => null)].filter(Boolean);
    assert.ok(replies.some((r) => r!.code === 426 || r!.code === 421), JSON.stringify(replies));
    assert.ok(s.server.logs.some((l) => l.msg === 'FTP stopped'), 'our shutdown ran (not ftp-srv\'s exit)');
    c.close();
    d.destroy();
    // Start it again on the same data: the upload was not committed, and nothing is left over.
    const again = await startServer({ REDIS_URL: s.redis.url, NONDIVY_DATA_DIR: s.data.path, NONDIVY_ADMIN_PASSWORD: ADMIN });
    try {
      const res = await fetch(`${again.api}/library?limit=200`);
      const items = ((await res.json()) as { items: Item[] }).items;
      assert.equal(items.length, before);
      await within(5000, () => s.leftovers().leases === 0 && s.leftovers().tmp.length === 0);
    } finally {
      await again.stop();
    }
  });
});

describe('FTPS (explicit AUTH TLS)', () => {
  let s: Site;
  let certs: { path: string; cleanup(): void };
  before(async () => {
    certs = tempDir('nondivy-tls-');
    const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', join(certs.path, 'key.pem'), '-out', join(certs.path, 'cert.pem')]);
    assert.equal(gen.status, 0, gen.stderr.toString());
    s = await site({ NONDIVY_FTP_TLS_CERT: join(certs.path, 'cert.pem'), NONDIVY_FTP_TLS_KEY: join(certs.path, 'key.pem'), NONDIVY_FTP_TLS_REQUIRED: '1' });
  });
  after(async () => {
    await s?.close();
    certs?.cleanup();
  });

  it('requires TLS before USER/PASS, then lists, uploads and downloads over TLS', BOUNDED, async () => {
    const plain = await RawFtp.open(s.server.ftpPort);
    try {
      await plain.next();
      const r = await plain.send('USER anonymous');
      assert.equal(r?.code, 530);
      assert.match(r!.text, /TLS/);
    } finally {
      plain.close();
    }
    const ftp = `ftp://127.0.0.1:${s.server.ftpPort}`;
    const bytes = randomBytes(300_001);
    const up = curlFtp(['--ssl-reqd', '-k', '-u', 'alice:alice-password', '-T', '-', `${ftp}/upload/secret-ish.bin`], bytes);
    assert.equal(up.status, 0, up.trace);
    assert.match(up.trace, /AUTH TLS/);
    const down = curlFtp(['--ssl-reqd', '-k', `${ftp}/library/other/secret-ish.bin`]);
    assert.equal(down.status, 0, down.trace);
    assert.equal(sha(down.out), sha(bytes));
    const list = curlFtp(['--ssl-reqd', '-k', `${ftp}/library/other/`]);
    assert.match(list.out.toString(), /secret-ish\.bin/);
  });
});

describe('FTP and HTTP over one library (s3 driver)', () => {
  let s: Site;
  before(async () => {
    s = await site({}, 's3');
  });
  after(async () => s?.close());

  it('upload by HTTP read by FTP, upload by FTP read by HTTP, listed by both', BOUNDED, async () => {
    const viaHttp = randomBytes(9 * MiB + 1); // several multipart parts
    const viaFtp = randomBytes(5 * MiB + 3);
    const res = await upload(s.server.api, s.admin, viaHttp, 'from-http.bin');
    assert.equal(res.status, 201);
    const client = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    try {
      assert.equal(sha(await download(client, '/library/other/from-http.bin')), sha(viaHttp));
      await client.uploadFrom(Readable.from([viaFtp]), '/library/other/from-ftp.bin');
      const names = (await client.list('/library/other')).map((f) => f.name).sort();
      assert.deepEqual(names, ['from-ftp.bin', 'from-http.bin']);
      assert.deepEqual((await download(client, '/library/other/from-ftp.bin', 4 * MiB)), viaFtp.subarray(4 * MiB));
    } finally {
      client.close();
    }
    const items = await s.items();
    assert.deepEqual(items.map((i) => i.filename).sort(), ['from-ftp.bin', 'from-http.bin']);
    const fromFtp = items.find((i) => i.filename === 'from-ftp.bin')!;
    assert.equal(fromFtp.sha256, sha(viaFtp));
    assert.deepEqual(await s.restBytes(fromFtp.id), viaFtp);
  });
});

describe('FTP modification times (MFMT, SITE UTIME) and /upload/ as the member\'s own items', () => {
  let s: Site;
  before(async () => {
    s = await site();
  });
  after(async () => s?.close());

  const itemNamed = async (filename: string) => (await s.items()).find((i) => i.filename === filename) as (Item & { modifiedAt: string | null; createdAt: string; updatedAt: string; path: string }) | undefined;

  it('MFMT and both SITE UTIME forms set the time MDTM, MLSD and REST show; strict validation; owner or admin only; SITE CHMOD is accepted', BOUNDED, async () => {
    const alice = await RawFtp.open(s.server.ftpPort);
    const bob = await RawFtp.open(s.server.ftpPort);
    const anon = await RawFtp.open(s.server.ftpPort);
    const admin = await RawFtp.open(s.server.ftpPort);
    try {
      assert.equal((await alice.login('alice', 'alice-password'))?.code, 230);
      assert.equal((await bob.login('bob', 'bob-password'))?.code, 230);
      assert.equal((await anon.login())?.code, 230);
      assert.equal((await admin.login('admin', ADMIN))?.code, 230);
      assert.match((await alice.send('FEAT'))!.text, /^ MFMT$/m);
      const port = await alice.epsv();
      const data = await dataSocket(port);
      assert.equal((await alice.send('STOR /upload/times.txt'))?.code, 150);
      data.end('some text');
      assert.equal((await alice.next())?.code, 226);

      const fresh = (await itemNamed('times.txt'))!;
      assert.equal(fresh.modifiedAt, null, 'REST shows modifiedAt as null until a client sets it');
      const created = fresh.createdAt.replace(/[-:T]/g, '').slice(0, 14);
      assert.equal((await alice.send(`MDTM ${fresh.path}`))?.text, `213 ${created}`, 'unset: the creation time as before');

      const mfmt = await alice.send('MFMT 20200229123456 /upload/times.txt');
      assert.equal(mfmt?.text, '213 Modify=20200229123456; /upload/times.txt');
      assert.equal((await alice.send('MDTM /upload/times.txt'))?.text, '213 20200229123456');
      assert.equal((await alice.send(`MDTM ${fresh.path}`))?.text, '213 20200229123456');
      assert.match(await listing(alice, 'MLSD', '/upload'), /modify=20200229123456; times\.txt\r\n/);
      assert.match(await listing(alice, 'MLSD', fresh.path.slice(0, fresh.path.lastIndexOf('/'))), /modify=20200229123456; times\.txt\r\n/);
      assert.match((await alice.send(`MLST ${fresh.path}`))!.text, /modify=20200229123456;/);
      const set = (await itemNamed('times.txt'))!;
      assert.equal(set.modifiedAt, '2020-02-29T12:34:56.000Z');
      assert.notEqual(set.updatedAt, fresh.updatedAt, 'an update like any other');
      assert.equal((await fetch(`${s.server.api}/library/${set.id}`).then((r) => r.json()) as { modifiedAt: string }).modifiedAt, '2020-02-29T12:34:56.000Z');

      // lftp / FileZilla: path, atime, mtime, ctime, UTC (the second time is the file's); then proftpd's form.
      assert.equal((await alice.send(`SITE UTIME ${fresh.path} 20210101000000 20210102030405 20210101000000 UTC`))?.code, 200);
      assert.equal((await alice.send('MDTM /upload/times.txt'))?.text, '213 20210102030405');
      assert.equal((await alice.send('SITE UTIME 20220303030303 /upload/times.txt'))?.code, 200);
      assert.equal((await alice.send('MDTM /upload/times.txt'))?.text, '213 20220303030303');
      assert.equal((await alice.send('SITE UTIME /upload/times.txt 20230101010101'))?.code, 200);
      assert.equal((await alice.send('MFMT 19991231235959.250 /upload/times.txt'))?.code, 213);
      assert.equal((await itemNamed('times.txt'))!.modifiedAt, '1999-12-31T23:59:59.250Z');

      for (const bad of [
        'MFMT 20210229000000 /upload/times.txt', // not a leap year
        'MFMT 19691231235959 /upload/times.txt', // before 1970
        'MFMT 2021010100000 /upload/times.txt', // 13 digits
        'MFMT 202101010000000 /upload/times.txt', // 15 digits
        'MFMT 20210101240000 /upload/times.txt', // hour 24
        'MFMT 20211301000000 /upload/times.txt', // month 13
        'MFMT 20210101000060 /upload/times.txt', // second 60
        'MFMT 20210101000000.1234 /upload/times.txt',
        'MFMT +0210101000000 /upload/times.txt',
        'MFMT 20210101000000',
        'MFMT',
        'SITE UTIME /upload/times.txt',
        'SITE UTIME /upload/times.txt 20210101000000 20210230000000 20210101000000 UTC',
        'SITE UTIME x y',
      ]) assert.equal((await alice.send(bad))?.code, 501, bad);
      assert.equal((await alice.send('MDTM /upload/times.txt'))?.text, '213 19991231235959', 'nothing changed');

      assert.equal((await bob.send(`MFMT 20200101000000 ${fresh.path}`))?.code, 550, 'not his');
      assert.equal((await bob.send(`SITE UTIME 20200101000000 ${fresh.path}`))?.code, 550);
      assert.equal((await anon.send(`MFMT 20200101000000 ${fresh.path}`))?.code, 550);
      assert.equal((await bob.send('MFMT 20200101000000 /upload/times.txt'))?.code, 550, 'bob has no times.txt of his own');
      assert.equal((await alice.send('MFMT 20200101000000 /upload/nothing.txt'))?.code, 550);
      assert.equal((await admin.send(`MFMT 20240102030405 ${fresh.path}`))?.code, 213, 'admins may');
      assert.equal((await alice.send('MDTM /upload/times.txt'))?.text, '213 20240102030405');

      assert.equal((await alice.send('SITE CHMOD 644 /upload/times.txt'))?.code, 200);
      assert.equal((await alice.send('SITE EXEC ls'))?.code, 502);
    } finally {
      for (const c of [alice, bob, anon, admin]) c.close();
    }
  });

  it('/upload/ lists the member\'s own latest items newest first (anonymous and others see none of them); SIZE, MDTM, RETR and DELE resolve there', BOUNDED, async () => {
    const alice = await ftpClient(s.server.ftpPort, 'alice', 'alice-password');
    const bob = await RawFtp.open(s.server.ftpPort);
    const anon = await RawFtp.open(s.server.ftpPort);
    try {
      await alice.uploadFrom(Readable.from([Buffer.from('first')]), '/upload/own-1.bin');
      await alice.uploadFrom(Readable.from([Buffer.from('second!')]), '/library/other/own-2.bin');
      const names = (await alice.list('/upload')).map((f) => f.name);
      assert.ok(names.indexOf('own-2.bin') >= 0 && names.indexOf('own-2.bin') < names.indexOf('own-1.bin'), `newest first: ${names.join(', ')}`);
      assert.equal(await alice.size('/upload/own-2.bin'), 7);
      assert.equal((await download(alice, '/upload/own-1.bin')).toString(), 'first');
      assert.equal((await download(alice, '/upload/own-1.bin', 2)).toString(), 'rst');
      await alice.lastMod('/upload/own-2.bin');

      assert.equal((await bob.login('bob', 'bob-password'))?.code, 230);
      assert.doesNotMatch(await listing(bob, 'LIST', '/upload'), /own-/);
      assert.equal((await bob.send('SIZE /upload/own-1.bin'))?.code, 550);
      assert.equal((await bob.send('DELE /upload/own-1.bin'))?.code, 550);
      assert.equal((await anon.login())?.code, 230);
      assert.equal(await listing(anon, 'LIST', '/upload'), '');
      assert.equal((await anon.send('SIZE /upload/own-1.bin'))?.code, 550);

      await alice.remove('/upload/own-2.bin');
      assert.ok(!(await itemNamed('own-2.bin')), 'deleted through /upload/');
      assert.ok(!(await alice.list('/upload')).some((f) => f.name === 'own-2.bin'));
      assert.equal(s.redis.cli('zcard', 'nd:items:by:alice'), String((await s.items()).filter((i) => i.uploadedBy === 'alice').length), 'the per-owner set follows deletes');

      // Only the latest 1000 are read: 1000 newer entries (ids of no item) hide the older own-1.bin.
      const future = Date.now() + 60_000;
      const args: string[] = [];
      for (let i = 0; i < 1000; i++) args.push(String(future + i), `fake${String(i).padStart(18, '0')}`);
      s.redis.cli('zadd', 'nd:items:by:alice', ...args);
      assert.ok(!(await alice.list('/upload')).some((f) => f.name === 'own-1.bin'), 'the listing stops at 1000');
      s.redis.cli('zremrangebyscore', 'nd:items:by:alice', String(future), '+inf');
      assert.ok((await alice.list('/upload')).some((f) => f.name === 'own-1.bin'));
    } finally {
      alice.close();
      bob.close();
      anon.close();
    }
  });
});
