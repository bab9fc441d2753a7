/**
 * Sync tools against the FTP door, run as a user would. Into /upload/: lftp's `mirror -R` and rclone's
 * `copy` of a flat folder, then back, byte-exact and (lftp) with the files' times kept through MFMT; a
 * second run finds everything already there and transfers nothing, because /upload/ lists the
 * member's own latest items with their sizes and times. Over the folder tree (/library/<kind>/…):
 * `rclone sync` of nested folders with unicode names (check, times, a second sync that transfers
 * nothing, a changed file that stays the same item with its tags, a deleted file), `lftp mirror -R`
 * and back (empty folders included), `wget -m` of the whole library, and the REST folder listing
 * walked against the FTP tree.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ITEM_KINDS } from '@nondivy/contracts';
import { ftpClient, ftpSite, type FtpSite, type Item } from './helpers/ftp.js';
import { bearer, login } from './helpers/http.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';

const ADMIN = 'admin-password';

function run(cmd: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 1 << 24, encoding: 'utf8' });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** A flat folder of a few files with distinct sizes and times in the past (whole seconds). */
function sourceFolder(dir: string, prefix: string): Map<string, { bytes: Buffer; mtime: number }> {
  mkdirSync(dir, { recursive: true });
  const files = new Map<string, { bytes: Buffer; mtime: number }>();
  const sizes = [0, 1, 4097, 70_001];
  sizes.forEach((size, i) => {
    const name = `${prefix}-${i}.bin`;
    const bytes = randomBytes(size);
    const mtime = Date.UTC(2019, i, 10 + i, 8, 30, 15 + i) / 1000;
    writeFileSync(join(dir, name), bytes);
    utimesSync(join(dir, name), mtime, mtime);
    files.set(name, { bytes, mtime });
  });
  return files;
}

describe('sync tools mirror a flat folder into /upload/ and back', () => {
  let redis: TestRedis;
  let data: ReturnType<typeof tempDir>;
  let work: ReturnType<typeof tempDir>;
  let server: TestServer;
  before(async () => {
    redis = await startRedis();
    data = tempDir();
    work = tempDir('nondivy-sync-');
    server = await startServer({ REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: ADMIN });
    const admin = await login(server.api, 'admin', ADMIN);
    const res = await fetch(`${server.api}/users`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'syncer', password: 'syncer-password', role: 'member' }),
    });
    assert.equal(res.status, 201);
  });
  after(async () => {
    await server?.stop();
    await redis?.close();
    data?.cleanup();
    work?.cleanup();
  });

  const lftp = (commands: string) =>
    run('lftp', ['-c', `set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes; open -u syncer,syncer-password ftp://127.0.0.1:${server.ftpPort}; ${commands}`]);

  it('lftp mirror -R uploads with the files\' times (MFMT), mirror brings back the same bytes and times, a second mirror -R transfers nothing', () => {
    const src = join(work.path, 'lftp-src');
    const dst = join(work.path, 'lftp-dst');
    const files = sourceFolder(src, 'lftp');
    const up = lftp(`mirror -R -v --use-pget-n=1 ${src} /upload`);
    assert.equal(up.status, 0, up.stdout + up.stderr);
    assert.equal(up.stderr.trim(), '', 'no errors');
    const down = lftp(`mirror -v /upload ${dst}`);
    assert.equal(down.status, 0, down.stdout + down.stderr);
    assert.deepEqual(readdirSync(dst).sort(), [...files.keys()].sort());
    for (const [name, { bytes, mtime }] of files) {
      assert.deepEqual(readFileSync(join(dst, name)), bytes, name);
      assert.equal(statSync(join(dst, name)).mtimeMs / 1000, mtime, `${name}: its time came back`);
    }
    const again = lftp(`mirror -R -v --use-pget-n=1 ${src} /upload`);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.equal(again.stderr.trim(), '', 'no errors');
    assert.doesNotMatch(again.stdout, /Transferring|Removing|chmod/i, again.stdout);
  });

  it('rclone copy to /upload/, rclone check agrees, a second copy transfers nothing', () => {
    const src = join(work.path, 'rclone-src');
    sourceFolder(src, 'rclone');
    const obscured = run('rclone', ['obscure', 'syncer-password']);
    const env = {
      RCLONE_CONFIG: join(work.path, 'rclone.conf'),
      RCLONE_CONFIG_X_TYPE: 'ftp',
      RCLONE_CONFIG_X_HOST: '127.0.0.1',
      RCLONE_CONFIG_X_PORT: String(server.ftpPort),
      RCLONE_CONFIG_X_USER: 'syncer',
      RCLONE_CONFIG_X_PASS: obscured.stdout.trim(),
    };
    const limits = ['--retries', '1', '--low-level-retries', '1', '--contimeout', '10s', '--timeout', '10s'];
    const up = run('rclone', ['copy', '-v', ...limits, src, 'X:/upload'], env);
    assert.equal(up.status, 0, up.stderr);
    const check = run('rclone', ['check', '--one-way', ...limits, src, 'X:/upload'], env);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stderr, /0 differences found/);
    const again = run('rclone', ['copy', '-v', ...limits, src, 'X:/upload'], env);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /There was nothing to transfer|Transferred:\s+0 \/ 0/, again.stderr);
    assert.doesNotMatch(again.stderr, /Copied|ERROR/, again.stderr);
  });
});

/** A local tree: each folder (relative path, '' excluded) and each file with its bytes and time (whole seconds). */
interface LocalTree {
  folders: string[];
  files: Map<string, { bytes: Buffer; mtime: number }>;
}

/** What is under `dir`: its folders and files by relative path (`.listing` files of wget left out). */
function readTree(dir: string): LocalTree {
  const tree: LocalTree = { folders: [], files: new Map() };
  for (const d of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const rel = relative(dir, join(d.parentPath, d.name));
    if (d.isDirectory()) tree.folders.push(rel);
    else if (d.isFile() && d.name !== '.listing') {
      const full = join(dir, rel);
      tree.files.set(rel, { bytes: readFileSync(full), mtime: Math.floor(statSync(full).mtimeMs / 1000) });
    }
  }
  tree.folders.sort();
  return tree;
}

/** Writes `files` (relative path → size) under `dir` with random bytes and distinct past times; `empty` folders too. */
function writeTree(dir: string, files: [string, number][], empty: string[] = []): LocalTree {
  files.forEach(([rel, size], i) => {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), randomBytes(size));
    const mtime = Date.UTC(2018, i % 12, 1 + i, 9, 10 + i, 20 + i) / 1000;
    utimesSync(join(dir, rel), mtime, mtime);
  });
  for (const rel of empty) mkdirSync(join(dir, rel), { recursive: true });
  return readTree(dir);
}

/** rclone's final statistics from a `--use-json-log -v` run's log (the last stats record). */
function rcloneStats(stderr: string): { transfers: number; deletes: number; errors: number } {
  let stats: { transfers: number; deletes: number; errors: number } | null = null;
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const rec = JSON.parse(line) as { stats?: { transfers: number; deletes: number; errors: number } };
    if (rec.stats) stats = rec.stats;
  }
  assert.ok(stats, `no stats in rclone's log:\n${stderr}`);
  return stats;
}

describe('sync tools over the folder tree', () => {
  let s: FtpSite;
  let work: ReturnType<typeof tempDir>;
  let alice: string;
  /** What was put on the server: its FTP path (below /library/) → bytes. */
  const uploaded = new Map<string, Buffer>();
  /** Folders the server should have (below /library/, without a trailing slash). */
  const madeFolders = new Set<string>();
  before(async () => {
    s = await ftpSite();
    work = tempDir('nondivy-sync-');
    alice = await login(s.server.api, 'alice', 'alice-password');
  });
  after(async () => {
    await s?.close();
    work?.cleanup();
  });

  /** An item by its FTP path, looked up in its folder's REST listing (paged). */
  async function itemAt(kind: string, folder: string, name: string): Promise<Item | undefined> {
    const want = `/library/${kind}/${folder}/${name}`;
    for (const item of await folderItems(kind, folder)) if (item.path === want) return item;
    return undefined;
  }
  /** Every item directly in a folder over REST, following the cursors (`limit` small to page). */
  async function folderItems(kind: string, folder: string, limit = 3): Promise<Item[]> {
    const out: Item[] = [];
    let cursor: string | null = null;
    do {
      const q: URLSearchParams = new URLSearchParams({ kind, folder, limit: String(limit), ...(cursor ? { cursor } : {}) });
      const res = await fetch(`${s.server.api}/library?${q}`);
      assert.equal(res.status, 200, `${q}: ${await res.clone().text()}`);
      const page = (await res.json()) as { items: Item[]; nextCursor: string | null };
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }

  const rcloneEnv = () => ({
    RCLONE_CONFIG: join(work.path, 'rclone.conf'),
    RCLONE_CONFIG_X_TYPE: 'ftp',
    RCLONE_CONFIG_X_HOST: '127.0.0.1',
    RCLONE_CONFIG_X_PORT: String(s.server.ftpPort),
    RCLONE_CONFIG_X_USER: 'alice',
    RCLONE_CONFIG_X_PASS: run('rclone', ['obscure', 'alice-password']).stdout.trim(),
  });
  const rclone = (args: string[]) =>
    run('rclone', [...args, '--retries', '1', '--low-level-retries', '1', '--contimeout', '10s', '--timeout', '10s'], rcloneEnv());
  const lftp = (commands: string, user = 'alice,alice-password') =>
    run('lftp', ['-c', `set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes; open -u ${user} ftp://127.0.0.1:${s.server.ftpPort}; ${commands}`]);

  it('rclone sync of a nested tree with unicode names into /library/audio/Tree: check agrees, times kept, a second sync transfers nothing, a changed file keeps its id and tags, a deleted one goes', async () => {
    const src = join(work.path, 'rclone-tree');
    const local = writeTree(src, [
      ['top level file.txt', 1234],
      ['empty.bin', 0],
      ['Artist é/Album ü/01 Track one.flac', 50_000],
      ['Artist é/Album ü/CD 2/日本 song.mp3', 7001],
      ['Artist é/Album ü/CD 2/zero.bin', 0],
      ['日本/notes.txt', 300],
    ]);
    const dest = 'X:/library/audio/Tree';
    const sync = () => rclone(['sync', '-v', '--use-json-log', src, dest]);

    const first = sync();
    assert.equal(first.status, 0, first.stderr);
    const firstStats = rcloneStats(first.stderr);
    assert.equal(firstStats.transfers, local.files.size);
    assert.equal(firstStats.errors, 0);

    const check = rclone(['check', src, dest]);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stderr, /0 differences found/);
    assert.match(check.stderr, new RegExp(`${local.files.size} matching files`));

    // Sizes and times as the server lists them (MLSD modify, set by rclone with MFMT).
    const listed = JSON.parse(rclone(['lsjson', '-R', '--files-only', dest]).stdout) as { Path: string; Size: number; ModTime: string }[];
    assert.deepEqual(listed.map((e) => e.Path).sort(), [...local.files.keys()].sort());
    for (const e of listed) {
      const f = local.files.get(e.Path)!;
      assert.equal(e.Size, f.bytes.length, e.Path);
      assert.equal(Math.floor(Date.parse(e.ModTime) / 1000), f.mtime, `${e.Path}: its time`);
    }

    const again = sync();
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(rcloneStats(again.stderr), { ...rcloneStats(again.stderr), transfers: 0, deletes: 0, errors: 0 }, again.stderr);
    assert.doesNotMatch(again.stderr, /Copied|Deleted|Updated/, again.stderr);

    // A changed file: tagged over REST first, then re-synced; the same item gets the new bytes.
    const track = await itemAt('audio', 'Tree/Artist é/Album ü', '01 Track one.flac');
    assert.ok(track, 'the track is in its folder over REST');
    const patched = await fetch(`${s.server.api}/library/${track.id}`, {
      method: 'PATCH',
      headers: { ...bearer(alice), 'content-type': 'application/json' },
      body: JSON.stringify({ tags: ['keepme', 'jazz'] }),
    });
    assert.equal(patched.status, 200);
    const changed = randomBytes(60_001);
    const trackFile = join(src, 'Artist é/Album ü/01 Track one.flac');
    writeFileSync(trackFile, changed);
    utimesSync(trackFile, 1_600_000_000, 1_600_000_000);
    const resync = sync();
    assert.equal(resync.status, 0, resync.stderr);
    assert.equal(rcloneStats(resync.stderr).transfers, 1, resync.stderr);
    const resynced = await itemAt('audio', 'Tree/Artist é/Album ü', '01 Track one.flac');
    assert.ok(resynced);
    assert.equal(resynced.id, track.id, 'the same item');
    assert.deepEqual([...resynced.tags].sort(), ['jazz', 'keepme']);
    assert.equal(resynced.size, changed.length);
    assert.deepEqual(await s.restBytes(resynced.id), changed);

    // A file deleted locally is deleted on the server.
    const gone = await itemAt('audio', 'Tree/日本', 'notes.txt');
    assert.ok(gone);
    rmSync(join(src, '日本/notes.txt'));
    const del = sync();
    assert.equal(del.status, 0, del.stderr);
    assert.equal(rcloneStats(del.stderr).deletes, 1, del.stderr);
    assert.equal((await fetch(`${s.server.api}/library/${gone.id}`)).status, 404);
    assert.equal(await itemAt('audio', 'Tree/日本', 'notes.txt'), undefined);
    const final = rclone(['check', src, dest]);
    assert.equal(final.status, 0, final.stderr);

    for (const [rel, f] of readTree(src).files) uploaded.set(`audio/Tree/${rel}`, f.bytes);
    for (const rel of readTree(src).folders) if (rel !== '日本') madeFolders.add(`audio/Tree/${rel}`);
    madeFolders.add('audio/Tree');
  });

  it('lftp mirror -R of a tree with subfolders and an empty folder, mirror back: the same files, folders, bytes and times; a second mirror -R transfers nothing', () => {
    const src = join(work.path, 'lftp-tree');
    const dst = join(work.path, 'lftp-back');
    const local = writeTree(
      src,
      [
        ['readme.md', 10],
        ['a/one.bin', 4097],
        ['a/b/two.bin', 70_001],
        ['a/b/c/three é.txt', 1],
        ['x y/zero', 0],
      ],
      ['a/empty', 'x y/nothing here'],
    );
    const up = lftp(`mirror -R -v --use-pget-n=1 '${src}' /library/document/Mirror`);
    assert.equal(up.status, 0, up.stdout + up.stderr);
    assert.equal(up.stderr.trim(), '', 'no errors');
    const down = lftp(`mirror -v /library/document/Mirror '${dst}'`);
    assert.equal(down.status, 0, down.stdout + down.stderr);
    const back = readTree(dst);
    assert.deepEqual(back.folders, local.folders, 'the same folders, the empty ones too');
    assert.deepEqual([...back.files.keys()].sort(), [...local.files.keys()].sort());
    for (const [rel, f] of local.files) {
      assert.deepEqual(back.files.get(rel)!.bytes, f.bytes, rel);
      assert.equal(back.files.get(rel)!.mtime, f.mtime, `${rel}: its time came back`);
    }
    const again = lftp(`mirror -R -v --use-pget-n=1 '${src}' /library/document/Mirror`);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.equal(again.stderr.trim(), '', 'no errors');
    assert.doesNotMatch(again.stdout, /Transferring|Removing|chmod|Making directory/i, again.stdout);

    for (const [rel, f] of local.files) uploaded.set(`document/Mirror/${rel}`, f.bytes);
    for (const rel of local.folders) madeFolders.add(`document/Mirror/${rel}`);
    madeFolders.add('document/Mirror');
  });

  it('wget -m of the library (anonymous) downloads what was uploaded, at the same paths', () => {
    assert.ok(uploaded.size > 0, 'the sync tests ran first');
    const into = join(work.path, 'wget');
    const res = spawnSync('wget', ['-m', '-nH', '-q', '--restrict-file-names=nocontrol', '--tries=1', '--timeout=10', '-P', into, `ftp://127.0.0.1:${s.server.ftpPort}/library/`], {
      timeout: 60_000,
      encoding: 'utf8',
    });
    assert.equal(res.status, 0, res.stderr);
    const got = readTree(join(into, 'library'));
    assert.deepEqual([...got.files.keys()].sort(), [...uploaded.keys()].sort());
    for (const [rel, bytes] of uploaded) assert.deepEqual(got.files.get(rel)!.bytes, bytes, rel);
    for (const rel of madeFolders) assert.ok(got.folders.includes(rel), `${rel} was mirrored`);
  });

  it('the REST folder listing (folders, then items, paged with cursors) is the FTP tree (MLSD)', async () => {
    assert.ok(uploaded.size > 0, 'the sync tests ran first');
    const rest = new Map<string, number | 'folder'>();
    const walkRest = async (kind: string, folder: string) => {
      let cursor: string | null = null;
      do {
        const q: URLSearchParams = new URLSearchParams({ kind, folder, limit: '2', ...(cursor ? { cursor } : {}) });
        const res = await fetch(`${s.server.api}/library/folders?${q}`);
        assert.equal(res.status, 200);
        const page = (await res.json()) as { folders: { name: string; folder: string; path: string }[]; nextCursor: string | null };
        for (const f of page.folders) {
          assert.equal(f.path, `/library/${kind}/${f.folder}`);
          rest.set(f.path, 'folder');
          await walkRest(kind, f.folder);
        }
        cursor = page.nextCursor;
      } while (cursor);
      for (const item of await folderItems(kind, folder, 2)) rest.set(item.path, item.size);
    };
    for (const kind of ITEM_KINDS) await walkRest(kind, '');

    const ftp = new Map<string, number | 'folder'>();
    const client = await ftpClient(s.server.ftpPort);
    try {
      const walkFtp = async (path: string) => {
        for (const e of await client.list(path)) {
          const full = `${path}/${e.name}`;
          if (e.isDirectory) {
            if (path !== '/library') ftp.set(full, 'folder');
            await walkFtp(full);
          } else ftp.set(full, e.size);
        }
      };
      await walkFtp('/library');
    } finally {
      client.close();
    }
    assert.deepEqual(new Map([...ftp].sort()), new Map([...rest].sort()));
    for (const rel of uploaded.keys()) assert.ok(rest.has(`/library/${rel}`), rel);
    for (const rel of madeFolders) assert.equal(rest.get(`/library/${rel}`), 'folder', rel);
  });
});
