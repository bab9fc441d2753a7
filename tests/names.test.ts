/**
 * One file-name rule for every door: the standalone server as a child process, a real Redis, REST
 * through fetch and raw multipart bodies, FTP through a bare control connection and basic-ftp. A name
 * the library would change is refused by both doors with the same accepted alternative, and an item's
 * REST `path` is the name FTP shows for it (a duplicate's too).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ftpClient, RawFtp } from './helpers/ftp.js';
import { bearer, login } from './helpers/http.js';
import { startServerWithRedis, type ServerWithRedis, type TestServer } from './helpers/server.js';

const ADMIN = 'admin-password';

interface Item {
  id: string;
  kind: string;
  filename: string;
  path?: string;
}
interface Problem {
  status: number;
  detail: string;
  acceptedName?: string;
}

let stack: ServerWithRedis;
let server: TestServer;
let alice: string;

before(async () => {
  stack = await startServerWithRedis({ NONDIVY_ADMIN_PASSWORD: ADMIN });
  server = stack.server;
  const admin = await login(server.api, 'admin', ADMIN);
  const res = await fetch(`${server.api}/users`, {
    method: 'POST',
    headers: { ...bearer(admin), 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: 'alice-password', role: 'member' }),
  });
  assert.equal(res.status, 201);
  alice = await login(server.api, 'alice', 'alice-password');
});

after(() => stack?.close());

/** A REST upload as a browser sends it (FormData: `"`, CR and LF in the name as %22, %0D, %0A). */
function restUpload(name: string, bytes = Buffer.from('x')) {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  return fetch(`${server.api}/library`, { method: 'POST', body: form, headers: bearer(alice) });
}

/** A REST upload whose multipart head is written by hand: the file name parameter exactly as given. */
function rawUpload(filenameParam: string) {
  const body = `--abc\r\nContent-Disposition: form-data; name="file"; filename=${filenameParam}\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n--abc--\r\n`;
  return fetch(`${server.api}/library`, { method: 'POST', body, headers: { ...bearer(alice), 'content-type': 'multipart/form-data; boundary=abc' } });
}

async function problem(res: Response): Promise<Problem> {
  assert.equal(res.status, 400);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  return (await res.json()) as Problem;
}

describe('one file-name rule for REST and FTP', () => {
  it('refuses the same names by both doors (400 and 553), naming the same accepted name', async () => {
    const cases: [string, string][] = [
      ['a:b?.bin', 'a_b_.bin'],
      ['say "hi".txt', 'say _hi_.txt'],
      ['pipe|star*.txt', 'pipe_star_.txt'],
      ['song.mp3 ', 'song.mp3'],
      ['notes.', 'notes'],
      ['.hidden', 'hidden'],
      ['two  spaces.txt', 'two spaces.txt'],
      ['invoice\u202Etxt.exe', 'invoicetxt.exe'],
      ['con.txt', '_con.txt'],
    ];
    const ftp = await RawFtp.open(server.ftpPort);
    try {
      assert.equal((await ftp.login('alice', 'alice-password'))?.code, 230);
      for (const [name, accepted] of cases) {
        const rest = await problem(await restUpload(name));
        assert.equal(rest.acceptedName, accepted, JSON.stringify(name));
        const reply = await ftp.send(`STOR /library/other/${name}`);
        assert.equal(reply?.code, 553, JSON.stringify(name));
        assert.equal(reply?.text, `553 File name not allowed; "${accepted}" would be`);
        assert.equal(rest.detail, reply.text.slice(4), 'the same words by both doors');
      }
    } finally {
      ftp.close();
    }
    // A name with folders (what a folder upload or a sync tool may send): FTP takes it for a path
    // outside the writable folders (553); REST refuses it too, naming the file name alone.
    for (const [name, accepted] of [['Music/Jazz/song.mp3', 'song.mp3'], ['..\\..\\evil.exe', 'evil.exe'], ['../../etc/passwd', 'passwd']]) {
      assert.equal((await problem(await restUpload(name!))).acceptedName, accepted, name);
    }
    const facets = (await (await fetch(`${server.api}/library/facets`)).json()) as { total: number };
    assert.equal(facets.total, 0, 'nothing was stored by either door');
  });

  it('decodes %22, %0D and %0A in a multipart file name, and nothing else', async () => {
    assert.equal((await problem(await rawUpload('"say %22hi%22.txt"'))).acceptedName, 'say _hi_.txt');
    assert.equal((await problem(await rawUpload('"cr%0D%0Alf.txt"'))).acceptedName, 'crlf.txt');
    // A backslash-escaped quote (RFC 2045 quoted-string, as some clients write it) is a quote too.
    assert.equal((await problem(await rawUpload('"back\\"slash.txt"'))).acceptedName, 'back_slash.txt');
    const kept = await rawUpload('"100%25 %41%0d.txt"');
    assert.equal(kept.status, 201);
    assert.equal(((await kept.json()) as Item).filename, '100%25 %41%0d.txt');
  });

  it('stores a decomposed name composed (NFC) by either door, the one change made silently', async () => {
    const rest = await restUpload('Cafe\u0301 rest.txt');
    assert.equal(rest.status, 201);
    const item = (await rest.json()) as Item;
    assert.equal(item.filename, 'Caf\u00e9 rest.txt');
    assert.equal(item.path, `/library/${item.kind}/Caf\u00e9 rest.txt`);
    const client = await ftpClient(server.ftpPort, 'alice', 'alice-password');
    try {
      const { Readable } = await import('node:stream');
      await client.uploadFrom(Readable.from([Buffer.from('y')]), '/library/other/Cafe\u0301 ftp.txt');
      const names = (await client.list('/library/other')).map((f) => f.name);
      assert.ok(names.includes('Caf\u00e9 ftp.txt'), names.join(', '));
    } finally {
      client.close();
    }
  });

  it('gives every item its FTP path: a duplicate\'s REST path is the name FTP lists, in the upload answer, by id and in search', async () => {
    const first = (await (await restUpload('Jazz Café Live.mp3', Buffer.from('one'))).json()) as Item;
    const res = await restUpload('Jazz Café Live.mp3', Buffer.from('two'));
    assert.equal(res.status, 201);
    const second = (await res.json()) as Item;
    assert.equal(first.path, `/library/${first.kind}/Jazz Café Live.mp3`);
    assert.equal(second.path, `/library/${second.kind}/Jazz Café Live (${second.id.slice(0, 6)}).mp3`);
    assert.equal(((await (await fetch(`${server.api}/library/${second.id}`)).json()) as Item).path, second.path);
    const found = ((await (await fetch(`${server.api}/library?q=${encodeURIComponent('jazz cafe')}`)).json()) as { items: Item[] }).items;
    assert.deepEqual(found.map((i) => i.path).sort(), [first.path, second.path].sort());

    const client = await ftpClient(server.ftpPort, 'alice', 'alice-password');
    try {
      const listed = (await client.list(`/library/${second.kind}`)).map((f) => `/library/${second.kind}/${f.name}`);
      assert.ok(listed.includes(second.path!) && listed.includes(first.path!), listed.join(', '));
      const chunks: Buffer[] = [];
      await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), second.path!);
      assert.equal(Buffer.concat(chunks).toString(), 'two', 'the path names the duplicate, not the first');
    } finally {
      client.close();
    }

    // A rename moves the path with the name.
    const renamed = await fetch(`${server.api}/library/${second.id}`, {
      method: 'PATCH',
      headers: { ...bearer(alice), 'content-type': 'application/json' },
      body: JSON.stringify({ filename: 'Jazz Café Encore.mp3' }),
    });
    assert.equal(((await renamed.json()) as Item).path, `/library/${second.kind}/Jazz Café Encore.mp3`);
  });
});
