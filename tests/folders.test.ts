/**
 * The library as a folder tree through the REST door: the standalone server as a child process over
 * a real Redis, REST through fetch (FormData and hand-written multipart bodies) and curl. Uploads
 * into folders (the `folder` field, a folder upload's `path`, both), the name rule on folders,
 * folder listings with counts and paging, the `folder` and `under` filters, moving an item, and
 * folders that exist only while they hold something.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { buildCatalog } from '@nondivy/catalog';
import { loadCatalogConfig } from '@nondivy/config';
import { SearchQuery } from '@nondivy/contracts';
import { CatalogClient } from '@nondivy/gateway';
import { createLogger } from '@nondivy/log';
import { createLibrary } from '@nondivy/runtime';
import { createRedis, waitForRedis } from '@nondivy/state';
import { createBlobStore } from '@nondivy/storage';
import { bearer, listenOnLoopback, login } from './helpers/http.js';
import { mp3 } from './helpers/media.js';
import { startServerWithRedis, type ServerWithRedis, type TestServer } from './helpers/server.js';

const ADMIN = 'admin-password';
const CLI = fileURLToPath(new URL('../clients/cli/bin/nondivy.mjs', import.meta.url));

interface Item {
  id: string;
  kind: string;
  folder: string;
  filename: string;
  path?: string;
  tags: string[];
  meta: Record<string, unknown>;
  sha256: string;
}
interface Problem {
  status: number;
  detail: string;
  acceptedName?: string;
  acceptedFolder?: string;
  errors?: { path: string; message: string }[];
}
interface FolderList {
  kind: string;
  folder: string;
  path: string;
  items: number;
  folders: { name: string; folder: string; path: string; items: number }[];
  nextCursor: string | null;
}

let stack: ServerWithRedis;
let server: TestServer;
let alice: string;
let bob: string;

async function addMember(admin: string, username: string) {
  const res = await fetch(`${server.api}/users`, {
    method: 'POST',
    headers: { ...bearer(admin), 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: `${username}-password`, role: 'member' }),
  });
  assert.equal(res.status, 201);
  return login(server.api, username, `${username}-password`);
}

before(async () => {
  stack = await startServerWithRedis({ NONDIVY_ADMIN_PASSWORD: ADMIN });
  server = stack.server;
  const admin = await login(server.api, 'admin', ADMIN);
  alice = await addMember(admin, 'alice');
  bob = await addMember(admin, 'bob');
});

after(() => stack?.close());

/** A REST upload as a browser's FormData sends it: the fields in the order given, the file last (or first). */
function upload(name: string, fields: Record<string, string> = {}, options: { bytes?: Buffer; fileFirst?: boolean; token?: string } = {}) {
  const form = new FormData();
  const file = () => form.append('file', new Blob([options.bytes ?? Buffer.from(`bytes of ${name}`)]), name);
  if (options.fileFirst) file();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  if (!options.fileFirst) file();
  return fetch(`${server.api}/library`, { method: 'POST', body: form, headers: bearer(options.token ?? alice) });
}

/** A multipart upload written by hand: the file name parameter exactly as given, then the fields. */
function rawUpload(filenameParam: string, fields: Record<string, string>) {
  let body = `--abc\r\nContent-Disposition: form-data; name="file"; filename=${filenameParam}\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n`;
  for (const [k, v] of Object.entries(fields)) body += `--abc\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  body += '--abc--\r\n';
  return fetch(`${server.api}/library`, { method: 'POST', body: Buffer.from(body), headers: { ...bearer(alice), 'content-type': 'multipart/form-data; boundary=abc' } });
}

async function created(res: Response): Promise<Item> {
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return JSON.parse(text) as Item;
}

async function problem(res: Response, status = 400): Promise<Problem> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  return JSON.parse(text) as Problem;
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(`${server.api}${path}`);
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return JSON.parse(text) as T;
}

const q = (params: Record<string, string | string[]>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) s.append(k, one);
  return s.toString();
};

/** Every item a search lists, through every page. */
async function searchAll(params: Record<string, string | string[]>): Promise<Item[]> {
  const out: Item[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Item[]; nextCursor: string | null } = await getJson(`/library?${q({ ...params, limit: '50', ...(cursor ? { cursor } : {}) })}`);
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

const folders = (kind: string, folder?: string, extra: Record<string, string> = {}) =>
  getJson<FolderList>(`/library/folders?${q({ kind, ...(folder === undefined ? {} : { folder }), ...extra })}`);

const ids = (items: { id: string }[]) => items.map((i) => i.id).sort();

async function patch(id: string, body: unknown, token = alice) {
  return fetch(`${server.api}/library/${id}`, { method: 'PATCH', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('uploads into folders', () => {
  it('puts an item in the folder field\'s folder, the path field\'s folders after it, fields before or after the file', async () => {
    const byFolder = await created(await upload('01 So What.flac', { kind: 'audio', folder: 'Miles Davis/Kind of Blue' }));
    assert.equal(byFolder.folder, 'Miles Davis/Kind of Blue');
    assert.equal(byFolder.path, '/library/audio/Miles Davis/Kind of Blue/01 So What.flac');

    const byPath = await created(await upload('01.flac', { kind: 'audio', path: 'Album/CD1/01.flac' }));
    assert.equal(byPath.folder, 'Album/CD1');
    assert.equal(byPath.filename, '01.flac');
    assert.equal(byPath.path, '/library/audio/Album/CD1/01.flac');

    // Both, with the fields after the file part: the file is staged, then committed where they say.
    const both = await created(await upload('02.flac', { kind: 'audio', folder: '/Music/', path: 'Album/CD2/02.flac' }, { fileFirst: true }));
    assert.equal(both.folder, 'Music/Album/CD2');
    assert.equal(both.path, '/library/audio/Music/Album/CD2/02.flac');

    // A browser submitting a folder input sends the relative path as the file name: the path field matches it.
    const whole = await created(await upload('Album/CD1/03.flac', { kind: 'audio', path: 'Album/CD1/03.flac' }));
    assert.equal(whole.path, '/library/audio/Album/CD1/03.flac');

    // Reading the item back gives the same folder and path.
    const read = await getJson<Item>(`/library/${both.id}`);
    assert.equal(read.folder, 'Music/Album/CD2');
    assert.equal(read.path, both.path);

    // curl's multipart, the field after the file.
    const dir = mkdtempSync(join(tmpdir(), 'nondivy-folders-'));
    try {
      writeFileSync(join(dir, 'track.flac'), 'curl bytes');
      const res = spawnSync('curl', ['-sS', '-H', `authorization: Bearer ${alice}`, '-F', `file=@${join(dir, 'track.flac')}`, '-F', 'kind=audio', '-F', 'folder=By curl/Disc 1', `${server.api}/library`], { encoding: 'utf8' });
      const item = JSON.parse(res.stdout) as Item;
      assert.equal(item.path, '/library/audio/By curl/Disc 1/track.flac');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps unicode folder names (composed) and lists them', async () => {
    const item = await created(await upload('chanson.mp3', { kind: 'audio', folder: 'Cafe\u0301 Noir/日本語 ñ' }));
    assert.equal(item.folder, 'Caf\u00e9 Noir/日本語 ñ');
    const root = await folders('audio');
    assert.ok(root.folders.some((f) => f.name === 'Caf\u00e9 Noir' && f.items === 1 && f.path === '/library/audio/Caf\u00e9 Noir'));
    const inside = await folders('audio', 'Café Noir');
    assert.deepEqual(inside.folders.map((f) => [f.name, f.folder, f.items]), [['日本語 ñ', 'Caf\u00e9 Noir/日本語 ñ', 1]]);
    assert.deepEqual(ids(await searchAll({ kind: 'audio', folder: 'Café Noir/日本語 ñ' })), [item.id]);
  });

  it('refuses a path whose last name is not the file\'s, and a path naming no file', async () => {
    const wrong = await problem(await upload('01.flac', { kind: 'audio', path: 'Album/CD1/02.flac' }));
    assert.match(wrong.detail, /"02\.flac" is not the name the file was sent with \("01\.flac"\)/);
    const wrongAfter = await problem(await upload('01.flac', { kind: 'audio', path: 'Album/CD1/02.flac' }, { fileFirst: true }));
    assert.equal(wrongAfter.detail, wrong.detail);
    assert.match((await problem(await upload('01.flac', { kind: 'audio', path: '//' }))).detail, /path names no file/);
    // Folders in the file name without a path field: refused, naming the file name alone (as before).
    assert.equal((await problem(await upload('Album/CD1/04.flac', { kind: 'audio' }))).acceptedName, '04.flac');
  });

  it('refuses folder names the library would change, naming the accepted folder, and stores nothing', async () => {
    const before = await getJson<{ total: number }>('/library/facets');
    assert.equal((await problem(await upload('a.txt', { folder: 'a:b' }))).acceptedFolder, 'a_b');
    assert.equal((await problem(await upload('a.txt', { folder: 'ok/a:b', path: 'c*d/a.txt' }))).acceptedFolder, 'ok/a_b/c_d');
    assert.equal((await problem(await upload('a.txt', { folder: 'x:y' }, { fileFirst: true }))).acceptedFolder, 'x_y');
    const dots = await problem(await upload('a.txt', { folder: '..' }));
    assert.equal(dots.detail, 'Folder name not allowed');
    assert.equal(dots.acceptedFolder, undefined);
    assert.equal((await problem(await upload('a.txt', { path: 'x/../y/a.txt' }))).acceptedFolder, 'x/y');
    const deep = Array.from({ length: 17 }, (_, i) => `d${i}`).join('/');
    assert.match((await problem(await upload('a.txt', { folder: deep }))).detail, /at most 16 levels/);
    await created(await upload('deep.txt', { kind: 'document', folder: deep.split('/').slice(0, 16).join('/') }));
    // A browser writes `"` in a file name as %22: decoded, then refused like FTP refuses it.
    const quoted = await problem(await rawUpload('"Live %22Bird%22/01.flac"', { kind: 'audio', path: 'Live "Bird"/01.flac' }));
    assert.equal(quoted.acceptedFolder, 'Live _Bird_');
    assert.equal((await problem(await upload('a.txt', { folder: 'say "hi"' }))).acceptedFolder, 'say _hi_');
    const afterAll = await getJson<{ total: number }>('/library/facets');
    assert.equal(afterAll.total, before.total + 1, 'only the 16-level upload was stored');
  });
});

describe('folder listings', () => {
  it('lists a kind\'s folders and a folder\'s subfolders with counts, and its items, equal to what was uploaded', async () => {
    const tree: Record<string, string[]> = {
      Shelf: ['a.pdf', 'b.pdf'],
      'Shelf/Novels': ['c.pdf'],
      'Shelf/Novels/French': ['d.pdf', 'e.pdf'],
      'Shelf/Poems': ['f.pdf'],
      Other: ['g.pdf'],
    };
    const uploaded: Record<string, string[]> = {};
    for (const [folder, names] of Object.entries(tree)) {
      for (const name of names) {
        const item = await created(await upload(name, { kind: 'ebook', folder }));
        (uploaded[folder] ??= []).push(item.id);
      }
    }
    const root = await folders('ebook');
    assert.equal(root.path, '/library/ebook');
    assert.equal(root.items, 7);
    assert.deepEqual(root.folders.map((f) => [f.name, f.items]), [['Other', 1], ['Shelf', 6]]);
    const shelf = await folders('ebook', 'Shelf');
    assert.equal(shelf.items, 6);
    assert.equal(shelf.path, '/library/ebook/Shelf');
    assert.deepEqual(shelf.folders, [
      { name: 'Novels', folder: 'Shelf/Novels', path: '/library/ebook/Shelf/Novels', items: 3 },
      { name: 'Poems', folder: 'Shelf/Poems', path: '/library/ebook/Shelf/Poems', items: 1 },
    ]);
    assert.equal(shelf.nextCursor, null);
    for (const [folder, expected] of Object.entries(uploaded)) {
      const listed = await searchAll({ kind: 'ebook', folder });
      assert.deepEqual(ids(listed), [...expected].sort(), folder);
      assert.ok(listed.every((i) => i.folder === folder && i.path === `/library/ebook/${folder}/${i.filename}`));
    }
    assert.deepEqual(ids(await searchAll({ kind: 'ebook', folder: '' })), [], 'nothing at the root');
    assert.equal((await searchAll({ kind: 'ebook', under: 'Shelf' })).length, 6);
    assert.equal((await searchAll({ kind: 'ebook', under: '' })).length, 7, 'under the root: the whole kind');
  });

  it('pages 250 subfolders by name', async () => {
    const names = Array.from({ length: 250 }, (_, i) => `sub ${String(i).padStart(3, '0')}`);
    for (let i = 0; i < names.length; i += 25) {
      await Promise.all(names.slice(i, i + 25).map(async (n) => created(await upload(`${n}.bin`, { kind: 'software', folder: `Many/${n}` }))));
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: FolderList = await folders('software', 'Many', { limit: '100', ...(cursor ? { cursor } : {}) });
      assert.equal(page.items, 250);
      assert.ok(page.folders.every((f) => f.items === 1));
      seen.push(...page.folders.map((f) => f.name));
      cursor = page.nextCursor;
      if (cursor) assert.equal(cursor, page.folders[page.folders.length - 1]!.name);
      pages++;
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(seen, names);
    // The items under them, paged (50 a page) in two orders: each once.
    for (const sort of ['title', 'new']) {
      const items = await searchAll({ kind: 'software', under: 'Many', sort });
      assert.equal(new Set(items.map((i) => i.id)).size, 250, sort);
    }
    assert.equal((await searchAll({ kind: 'software', folder: 'Many' })).length, 0, 'none directly in Many');
    const bad = await problem(await fetch(`${server.api}/library/folders?kind=software&limit=1001`));
    assert.ok(bad.errors?.some((e) => /limit/.test(e.path)));
  });

  it('answers 404 for a folder that does not exist (never for the root) and 400 without a kind', async () => {
    const missing = await problem(await fetch(`${server.api}/library/folders?kind=video&folder=Nowhere`), 404);
    assert.match(missing.detail, /No folder "Nowhere" in video/);
    const root = await folders('video');
    assert.deepEqual([root.items, root.folders, root.nextCursor], [0, [], null]);
    const noKind = await problem(await fetch(`${server.api}/library/folders?folder=Shelf`));
    assert.ok(noKind.errors?.some((e) => e.path === 'querystring.kind'), JSON.stringify(noKind));
  });
});

describe('the folder and under filters', () => {
  let inJazz: Item;
  let inSub: Item;
  let inRock: Item;

  before(async () => {
    inJazz = await created(await upload('blue train.txt', { kind: 'document', folder: 'Jazz', tags: 'live' }));
    inSub = await created(await upload('blue moon.txt', { kind: 'document', folder: 'Jazz/Ballads', tags: 'live,slow' }));
    inRock = await created(await upload('blue sky.txt', { kind: 'document', folder: 'Rock', tags: 'live' }));
  });

  it('folder: the items directly in it; under: it and below; both with q and tag', async () => {
    assert.deepEqual(ids(await searchAll({ kind: 'document', folder: 'Jazz', q: 'blue' })), [inJazz.id]);
    assert.deepEqual(ids(await searchAll({ kind: 'document', under: 'Jazz', q: 'blue' })), ids([inJazz, inSub]));
    assert.deepEqual(ids(await searchAll({ kind: 'document', under: 'Jazz', tag: 'slow' })), [inSub.id]);
    assert.deepEqual(ids(await searchAll({ kind: 'document', folder: 'Jazz', tag: 'slow' })), []);
    assert.deepEqual(ids(await searchAll({ kind: 'document', under: 'Jazz', q: 'moo' })), [inSub.id], 'type-ahead prefix');
    assert.deepEqual(ids(await searchAll({ kind: 'document', q: 'blue', tag: 'live' })), ids([inJazz, inSub, inRock]));
    assert.deepEqual(ids(await searchAll({ kind: 'document', under: 'Rock', tag: 'live' })), [inRock.id]);
    assert.deepEqual(ids(await searchAll({ kind: 'document', under: 'Nowhere' })), []);
    const facets = await getJson<{ total: number; kinds: Record<string, number>; tags: { tag: string; count: number }[] }>(`/library/facets?${q({ kind: 'document', under: 'Jazz' })}`);
    assert.equal(facets.total, 2);
    assert.deepEqual(facets.kinds, { document: 2 });
    assert.deepEqual(facets.tags.find((t) => t.tag === 'live')?.count, 2);
    const inFolder = await getJson<{ total: number }>(`/library/facets?${q({ kind: 'document', folder: 'Jazz/Ballads', q: 'blue' })}`);
    assert.equal(inFolder.total, 1);
  });

  it('the same through the catalog service over HTTP (the gateway\'s client, as in the separate-services deployment)', async () => {
    const log = createLogger('test', 'silent');
    const redis = createRedis(stack.redis.url, log, 'test');
    await waitForRedis(redis, log, 10_000);
    const blobs = await createBlobStore({ driver: 'fs', root: join(stack.data.path, 'blobs') }, log);
    const catalog = await buildCatalog(loadCatalogConfig({}), { log, redis, blobs });
    try {
      const client = new CatalogClient(await listenOnLoopback(catalog));
      const search = async (query: Record<string, unknown>) => ids((await client.search(SearchQuery.parse(query))).items);
      assert.deepEqual(await search({ kind: 'document', under: 'Jazz', q: 'blue' }), ids([inJazz, inSub]));
      assert.deepEqual(await search({ kind: 'document', folder: 'Jazz/Ballads', tag: 'live' }), [inSub.id]);
      assert.deepEqual(await search({ kind: 'document', folder: 'Rock' }), [inRock.id]);
      // '' is the kind's root, not "no filter": none of these three is there.
      assert.ok(!(await search({ kind: 'document', folder: '', limit: 200 })).some((i) => [inJazz.id, inSub.id, inRock.id].includes(i)));
      assert.equal((await client.facets(SearchQuery.parse({ kind: 'document', under: 'Jazz' }))).total, 2);
    } finally {
      await catalog.close();
      redis.disconnect();
    }
  });

  it('refuses folder or under without kind, saying why', async () => {
    for (const params of [{ folder: 'Jazz' }, { under: 'Jazz' }] as Record<string, string>[]) {
      for (const path of ['/library', '/library/facets']) {
        const p = await problem(await fetch(`${server.api}${path}?${q(params)}`));
        assert.ok(p.errors?.some((e) => e.path === 'querystring.kind' && /folder and under need kind/.test(e.message)), JSON.stringify(p));
      }
    }
    const both = await problem(await fetch(`${server.api}/library?${q({ kind: 'document', folder: 'Jazz', under: 'Jazz' })}`));
    assert.ok(both.errors?.some((e) => /not both/.test(e.message)));
    const federated = await problem(await fetch(`${server.api}/library?${q({ kind: 'document', folder: 'Jazz', scope: 'federated' })}`));
    assert.match(federated.detail, /this site's library only/);
  });
});

describe('moving items', () => {
  /** Reads server-sent events from a fetch body until `count` arrived or `ms` passed. */
  async function readEvents(res: Response, count: number, ms = 5000) {
    const reader = res.body!.getReader();
    const events: { event: string; data: { type: string; id: string } }[] = [];
    let text = '';
    const deadline = Date.now() + ms;
    while (events.length < count && Date.now() < deadline) {
      const chunk = await Promise.race([reader.read(), new Promise<null>((r) => setTimeout(() => r(null), deadline - Date.now()))]);
      if (!chunk || chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
      let i: number;
      while ((i = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, i);
        text = text.slice(i + 2);
        const fields = Object.fromEntries(block.split('\n').filter((l) => /^(event|data):/.test(l)).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
        if (fields.event) events.push({ event: fields.event, data: JSON.parse(fields.data!) });
      }
    }
    await reader.cancel();
    return events;
  }

  it('moves an item with PATCH folder (item.updated follows), a taken name getting the suffixed path name', async () => {
    const item = await created(await upload('notes.txt', { kind: 'document', folder: 'Inbox' }));
    const stream = await fetch(`${server.api}/events`);
    assert.equal(stream.status, 200);
    await new Promise((r) => setTimeout(r, 200));
    const res = await patch(item.id, { folder: 'Archive/2026' });
    const moved = (await res.json()) as Item;
    assert.equal(res.status, 200, JSON.stringify(moved));
    assert.equal(moved.folder, 'Archive/2026');
    assert.equal(moved.path, '/library/document/Archive/2026/notes.txt');
    const events = await readEvents(stream, 1);
    assert.deepEqual(events.map((e) => [e.event, e.data.id]), [['item.updated', item.id]]);
    assert.deepEqual(ids(await searchAll({ kind: 'document', folder: 'Archive/2026' })), [item.id]);
    await problem(await fetch(`${server.api}/library/folders?kind=document&folder=Inbox`), 404);

    // A second notes.txt moved there keeps its file name and gets the suffixed path name.
    const other = await created(await upload('notes.txt', { kind: 'document', folder: 'Elsewhere' }));
    const second = (await (await patch(other.id, { folder: 'Archive/2026' })).json()) as Item;
    assert.equal(second.filename, 'notes.txt');
    assert.match(second.path!, /^\/library\/document\/Archive\/2026\/notes \(.+\)\.txt$/);
    assert.notEqual(second.path, moved.path);
    // Back to the kind's root.
    assert.equal(((await (await patch(other.id, { folder: '' })).json()) as Item).path, '/library/document/notes.txt');
  });

  it('refuses a move whose way passes through a file\'s name (409), a refused folder name (400), and others\' items (403)', async () => {
    const file = await created(await upload('cover.jpg', { kind: 'image', folder: 'Art' }));
    const item = await created(await upload('sketch.png', { kind: 'image', folder: 'Drafts' }));
    const clash = await problem(await patch(item.id, { folder: 'Art/cover.jpg/inner' }), 409);
    assert.match(clash.detail, /A file has the name of a folder on the way/);
    await problem(await upload('x.png', { kind: 'image', folder: 'Art/cover.jpg' }), 409);
    assert.equal((await getJson<Item>(`/library/${item.id}`)).folder, 'Drafts', 'nothing moved');
    assert.equal((await problem(await patch(item.id, { folder: 'Bad|name' }))).acceptedFolder, 'Bad_name');
    await problem(await patch(item.id, { folder: 'Bob says' }, bob), 403);
    assert.equal((await getJson<Item>(`/library/${file.id}`)).path, '/library/image/Art/cover.jpg');
  });

  it('a folder that held only one item disappears with it', async () => {
    const item = await created(await upload('only.txt', { kind: 'other', folder: 'Lonely/Deep' }));
    assert.ok((await folders('other')).folders.some((f) => f.name === 'Lonely'));
    assert.equal((await folders('other', 'Lonely')).items, 1);
    const del = await fetch(`${server.api}/library/${item.id}`, { method: 'DELETE', headers: bearer(alice) });
    assert.equal(del.status, 204);
    assert.ok(!(await folders('other')).folders.some((f) => f.name === 'Lonely'));
    await problem(await fetch(`${server.api}/library/folders?kind=other&folder=Lonely/Deep`), 404);
    await problem(await fetch(`${server.api}/library/folders?kind=other&folder=Lonely`), 404);
  });
});

describe('enrichment of replaced bytes', () => {
  it('reads the new bytes of an item whose content was replaced (item.updated with content)', async () => {
    const first = mp3({ title: 'First Take', artist: 'Quartet', album: 'Sessions', track: '1', year: '1959' });
    const item = await created(await upload('take.mp3', { kind: 'audio', folder: 'Sessions' }, { bytes: first }));
    const metaOf = async (want: string) => {
      for (let i = 0; i < 100; i++) {
        const now = await getJson<Item>(`/library/${item.id}`);
        if (now.meta.title === want) return now;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.fail(`meta.title never became ${want}`);
    };
    await metaOf('First Take');
    // New bytes through the library itself (the FTP door's way of replacing a member's own file),
    // over the server's own Redis and blob folder.
    const log = createLogger('test', 'silent');
    const redis = createRedis(stack.redis.url, log, 'test');
    try {
      await waitForRedis(redis, log, 10_000);
      const blobs = await createBlobStore({ driver: 'fs', root: join(stack.data.path, 'blobs') }, log);
      const library = createLibrary({ redis, blobs, log, maxUploadBytes: 1 << 24, uploadLeaseSeconds: 30 });
      const second = mp3({ title: 'Second Take', artist: 'Quartet', album: 'Sessions', track: '2', year: '1959' });
      const staged = await library.stage(Readable.from([second]));
      await staged.replace(item.id, { username: 'alice', role: 'member' });
      const replaced = await metaOf('Second Take');
      assert.equal(replaced.id, item.id);
      assert.notEqual(replaced.sha256, item.sha256);
      assert.equal(replaced.meta.track, 2);
      assert.equal(replaced.path, '/library/audio/Sessions/take.mp3');
    } finally {
      redis.disconnect();
    }
  });
});

describe('the nondivy CLI', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nondivy-folders-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const nondivy = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '', HOME: dir, NONDIVY_SERVER: server.url, NONDIVY_TOKEN: alice } });

  it('uploads one file into --folder', () => {
    writeFileSync(join(dir, 'single.pdf'), 'one file');
    const res = nondivy('upload', 'single.pdf', '--kind', 'document', '--folder', 'From CLI/Single', '--json');
    assert.equal(res.status, 0, res.stderr);
    assert.equal((JSON.parse(res.stdout) as Item).path, '/library/document/From CLI/Single/single.pdf');
  });

  it('uploads a folder with its folders under --folder, reports a refused name, and sends the rest', async () => {
    const tree = join(dir, 'Kind of Blue');
    mkdirSync(join(tree, 'Disc 2'), { recursive: true });
    mkdirSync(join(tree, 'Empty'));
    writeFileSync(join(tree, '01 So What.mp3'), 'so what');
    writeFileSync(join(tree, 'Disc 2', '02 Freddie.mp3'), 'freddie');
    writeFileSync(join(tree, 'Disc 2', 'bad:name.mp3'), 'refused');
    symlinkSync('/etc/passwd', join(tree, 'link.mp3'));
    const res = nondivy('upload', 'Kind of Blue', '--kind', 'audio', '--folder', 'CLI/Miles Davis', '--tags', 'jazz', '--json');
    assert.equal(res.status, 1, res.stderr);
    const out = JSON.parse(res.stdout) as { items: Item[]; failed: { file: string; error: string }[] };
    assert.deepEqual(out.items.map((i) => i.path).sort(), [
      '/library/audio/CLI/Miles Davis/Kind of Blue/01 So What.mp3',
      '/library/audio/CLI/Miles Davis/Kind of Blue/Disc 2/02 Freddie.mp3',
    ]);
    assert.deepEqual(out.failed.map((f) => f.file), ['Kind of Blue/Disc 2/bad:name.mp3']);
    assert.match(out.failed[0]!.error, /"bad_name\.mp3" would be/);
    assert.match(res.stderr, /link\.mp3: skipped/);
    const listed = await folders('audio', 'CLI/Miles Davis/Kind of Blue');
    assert.deepEqual([listed.items, listed.folders.map((f) => [f.name, f.items])], [2, [['Disc 2', 1]]]);
    assert.deepEqual(ids(await searchAll({ kind: 'audio', under: 'CLI', tag: 'jazz' })), ids(out.items));
    assert.equal(nondivy('upload', 'Kind of Blue', '--title', 'One title').status, 2, '--title names one file');
  });
});
