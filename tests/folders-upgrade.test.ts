/**
 * A site from before folders upgrades without losing anything. A library is written straight into a
 * real Redis as index version 3 laid it out (items without a `folder` field, path names kept in one
 * `nd:ix:name:<kind>` hash per kind, `nd:site` indexVersion 3) over real blobs in the data folder;
 * the standalone server then starts on it (a child process, REST through fetch): the same items with
 * the same path names sit at their kinds' roots, and folder listings and filters work. Finally
 * `npm run reindex` (dist/reindex.mjs as a child process) rebuilds the folder indexes from nothing,
 * made folders included.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '@nondivy/log';
import { createLibrary } from '@nondivy/runtime';
import { createRedis, waitForRedis, type Redis } from '@nondivy/state';
import { termScore, termWeights, titleSortKey } from '@nondivy/search';
import { FsBlobStore, type Library } from '@nondivy/storage';
import { bearer, login } from './helpers/http.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const log = createLogger('test', 'silent');

interface Item {
  id: string;
  kind: string;
  folder: string;
  title: string;
  filename: string;
  tags: string[];
  size: number;
  sha256: string;
  path?: string;
  uploadedBy: string;
}
interface FolderList {
  items: number;
  folders: { name: string; folder: string; items: number }[];
  nextCursor: string | null;
}

/** One item as a version-3 site stored it. */
interface OldItem {
  id: string;
  kind: string;
  filename: string;
  title: string;
  tags: string[];
  bytes: Buffer;
  uploadedBy: string;
  /** The path name the old index gave it (its file name, or with the start of its id for a second one). */
  name: string;
}

/** An item's index terms as the index scripts keep them in its hash (JSON [[term, score], …]). */
const termsOf = (item: Parameters<typeof termWeights>[0] & { createdAt: string }) =>
  JSON.stringify([...termWeights(item)].map(([term, weight]) => [term, termScore(weight, Date.parse(item.createdAt))]));

const id = (n: number) => `OldItem${String(n).padStart(15, '0')}`;
const OLD: OldItem[] = [
  { id: id(1), kind: 'audio', filename: 'So What.mp3', title: 'So What', tags: ['jazz'], bytes: Buffer.from('first so what'), uploadedBy: 'alice', name: 'So What.mp3' },
  { id: id(2), kind: 'audio', filename: 'So What.mp3', title: 'So What (live)', tags: ['jazz', 'live'], bytes: Buffer.from('second so what'), uploadedBy: 'bob', name: `So What (${id(2).slice(0, 6)}).mp3` },
  { id: id(3), kind: 'ebook', filename: 'Dune.epub', title: 'Dune', tags: [], bytes: Buffer.from('spice'), uploadedBy: 'alice', name: 'Dune.epub' },
  { id: id(4), kind: 'document', filename: 'notes.txt', title: 'Notes', tags: ['work'], bytes: Buffer.from('notes'), uploadedBy: 'alice', name: 'notes.txt' },
];

let redis: TestRedis;
let data: { path: string; cleanup(): void };
let client: Redis;
let blobs: FsBlobStore;
let library: Library;
let server: TestServer | null = null;

async function writeBlob(bytes: Buffer): Promise<string> {
  const writer = blobs.begin();
  await writer.write(bytes);
  await writer.finish();
  return writer.key;
}

/** Writes the library as version 3 of the index kept it: items, blobs, owners, the old name hashes. */
async function writeOldLibrary() {
  const { createHash } = await import('node:crypto');
  const multi = client.multi();
  let t = Date.parse('2026-06-01T10:00:00.000Z');
  for (const it of OLD) {
    const sha256 = createHash('sha256').update(it.bytes).digest('hex');
    const blobKey = await writeBlob(it.bytes);
    const createdAt = new Date((t += 60_000)).toISOString();
    const stored = { ...it, description: '', contentType: 'application/octet-stream', size: it.bytes.length, sha256, createdAt, updatedAt: createdAt, downloads: 0, meta: {} };
    // The item hash as version 3 wrote it: no `folder`; `name` and `nameFor` (kind/filename) from the index.
    multi.hset(`nd:item:${it.id}`,
      'id', it.id, 'title', it.title, 'kind', it.kind, 'tags', JSON.stringify(it.tags), 'description', '', 'filename', it.filename,
      'contentType', 'application/octet-stream', 'size', String(it.bytes.length), 'sha256', sha256, 'blobKey', blobKey,
      'createdAt', createdAt, 'updatedAt', createdAt, 'modifiedAt', '', 'uploadedBy', it.uploadedBy, 'downloads', '0', 'meta', '{}',
      'titleKey', String(titleSortKey(it.title)), 'terms', termsOf(stored), 'name', it.name, 'nameFor', `${it.kind}/${it.filename}`);
    multi.zadd('nd:items:created', Date.parse(createdAt), it.id);
    multi.zadd(`nd:items:by:${it.uploadedBy}`, Date.parse(createdAt), it.id);
    multi.hset(`nd:blob:${sha256}`, 'key', blobKey, 'size', String(it.bytes.length), 'refs', '1', 'item', it.id);
    // The old index's keys (version 3): one name hash per kind, kind sets and counts.
    multi.hset(`nd:ix:name:${it.kind}`, it.name, it.id);
    multi.zadd(`nd:ix:kind:${it.kind}`, 0, it.id);
    multi.hincrby('nd:ix:facet:kind', it.kind, 1);
  }
  multi.incr('nd:ix:gen');
  multi.hset('nd:site', 'siteId', 'old-site-0001', 'indexVersion', '3');
  await multi.exec();
}

async function getJson<T>(path: string, token?: string): Promise<T> {
  const res = await fetch(`${server!.api}${path}`, { headers: token ? bearer(token) : {} });
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return JSON.parse(text) as T;
}

const startOn = () => startServer({ REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: 'admin-password' });

before(async () => {
  redis = await startRedis();
  data = tempDir();
  client = createRedis(redis.url, log, 'test');
  await waitForRedis(client, log, 10_000);
  blobs = new FsBlobStore(join(data.path, 'blobs'));
  await blobs.init();
  library = createLibrary({ redis: client, blobs, log, maxUploadBytes: 1 << 20, uploadLeaseSeconds: 30 });
  await writeOldLibrary();
  server = await startOn();
});

after(async () => {
  await server?.stop();
  client?.disconnect();
  await redis?.close();
  data?.cleanup();
});

describe('a site from before folders', () => {
  let admin: string;
  let moved: Item;

  before(async () => {
    admin = await login(server!.api, 'admin', 'admin-password');
  });

  it('keeps every item, its bytes and its path name, at its kind\'s root', async () => {
    assert.equal(await client.hget('nd:site', 'indexVersion'), '5', 'the index was rebuilt for folders (and title sort texts) at start');
    assert.equal(await client.exists('nd:ix:name:audio'), 0, 'the old name hash is gone');
    for (const old of OLD) {
      const item = await getJson<Item>(`/library/${old.id}`);
      assert.deepEqual(
        [item.kind, item.folder, item.filename, item.title, item.tags, item.size, item.uploadedBy, item.path],
        [old.kind, '', old.filename, old.title, old.tags, old.bytes.length, old.uploadedBy, `/library/${old.kind}/${old.name}`],
      );
      const content = await fetch(`${server!.api}/library/${old.id}/content`);
      assert.equal(content.status, 200);
      assert.deepEqual(Buffer.from(await content.arrayBuffer()), old.bytes);
    }
    const total = await getJson<{ total: number }>('/library/facets');
    assert.equal(total.total, OLD.length);
  });

  it('lists the kinds\' roots and filters by folder, and takes new folders beside the old items', async () => {
    const audioRoot = await getJson<{ items: Item[] }>('/library?kind=audio&folder=');
    assert.deepEqual(audioRoot.items.map((i) => i.id).sort(), [id(1), id(2)]);
    const folders = await getJson<FolderList>('/library/folders?kind=audio');
    assert.deepEqual([folders.items, folders.folders], [2, []]);

    const form = new FormData();
    form.append('kind', 'audio');
    form.append('folder', 'Miles Davis');
    form.append('file', new Blob([Buffer.from('new')]), 'So What.mp3');
    const res = await fetch(`${server!.api}/library`, { method: 'POST', body: form, headers: bearer(admin) });
    const added = (await res.json()) as Item;
    assert.equal(res.status, 201);
    assert.equal(added.path, '/library/audio/Miles Davis/So What.mp3', 'a name taken at the root is free in a folder');

    // An old item moved into a folder: its name there is its file name.
    const patch = await fetch(`${server!.api}/library/${id(4)}`, { method: 'PATCH', headers: { ...bearer(admin), 'content-type': 'application/json' }, body: '{"folder":"Work/2026"}' });
    moved = (await patch.json()) as Item;
    assert.equal(patch.status, 200);
    assert.equal(moved.path, '/library/document/Work/2026/notes.txt');
    assert.deepEqual((await getJson<{ items: Item[] }>('/library?kind=document&under=Work&tag=work')).items.map((i) => i.id), [id(4)]);
    assert.deepEqual((await getJson<FolderList>('/library/folders?kind=audio')).folders.map((f) => [f.name, f.items]), [['Miles Davis', 1]]);
  });

  it('npm run reindex rebuilds the folder indexes from nothing, made folders included', async () => {
    await library.makeFolder('audio', 'Empty/Made', { username: 'admin', role: 'admin' });
    const before = {
      audio: await getJson<FolderList>('/library/folders?kind=audio'),
      empty: await getJson<FolderList>('/library/folders?kind=audio&folder=Empty'),
      work: await getJson<FolderList>('/library/folders?kind=document&folder=Work'),
      paths: await Promise.all(OLD.map(async (o) => (await getJson<Item>(`/library/${o.id}`)).path)),
    };
    assert.deepEqual(before.audio.folders.map((f) => [f.name, f.items]), [['Empty', 0], ['Miles Davis', 1]]);
    assert.deepEqual(before.empty.folders.map((f) => f.name), ['Made']);

    await server!.stop();
    server = null;
    let dropped = 0;
    for await (const batch of client.scanStream({ match: 'nd:ix:*', count: 1000 }) as AsyncIterable<string[]>) {
      if (batch.length) dropped += await client.del(...batch);
    }
    assert.ok(dropped > 10, `dropped ${dropped} index keys`);
    assert.equal(await client.scard('nd:folders:made:audio'), 1, 'made folders are kept apart from the index');

    const res = spawnSync(process.execPath, ['dist/reindex.mjs'], { cwd: ROOT, env: { PATH: process.env.PATH, REDIS_URL: redis.url }, encoding: 'utf8', timeout: 60_000 });
    assert.equal(res.status, 0, res.stderr);
    const line = res.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; items?: number }).find((l) => l.msg === 'index rebuilt');
    assert.equal(line?.items, OLD.length + 1);

    server = await startOn();
    assert.deepEqual(await getJson<FolderList>('/library/folders?kind=audio'), before.audio);
    assert.deepEqual(await getJson<FolderList>('/library/folders?kind=audio&folder=Empty'), before.empty);
    assert.deepEqual(await getJson<FolderList>('/library/folders?kind=document&folder=Work'), before.work);
    assert.deepEqual(await Promise.all(OLD.map(async (o) => (await getJson<Item>(`/library/${o.id}`)).path)), before.paths, 'every path name kept');
    assert.deepEqual((await getJson<{ items: Item[] }>('/library?kind=document&folder=Work/2026')).items.map((i) => i.id), [id(4)]);
    assert.deepEqual((await getJson<{ items: Item[] }>('/library?kind=audio&folder=&q=what')).items.map((i) => i.id).sort(), [id(1), id(2)]);
    // The made folder is still an empty folder that can be removed, and then is gone.
    await library.removeFolder('audio', 'Empty/Made', { username: 'admin', role: 'admin' });
    assert.equal((await fetch(`${server.api}/library/folders?kind=audio&folder=Empty`)).status, 404);
  });
});
