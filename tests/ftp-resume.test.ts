/**
 * Resumable FTP uploads against the standalone server as a child process, over a real Redis and the
 * fs driver or S3 (s3rver): curl's `-T` upload interrupted (the client frozen until the server's data
 * timeout stops it) and continued with `curl -C - -T` (SIZE, then APPE), lftp's `put -c` (SIZE, then
 * REST + STOR) after a data connection reset, a restart of the server in between, and the refusals:
 * REST + STOR on another member's unfinished upload, on a finished item or at the wrong offset, APPE
 * onto a finished item, SIZE of an unfinished upload to anyone but its owner. A plain STOR starts
 * again from zero, DELE drops one's unfinished upload, bytes past the upload limit remove all of it.
 * Each ends with the item's SHA-256 equal to the file's and no staged byte or unfinished key left.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMIN, dataSocket, files, RawFtp, within, type Item, type Reply } from './helpers/ftp.js';
import { bearer, login } from './helpers/http.js';
import { freePort, freePortRange, startRedis, startS3, tempDir, type TestRedis, type TestS3 } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Redis, a data folder (and s3rver) and a standalone server over them, restartable on the same ports. */
interface Site {
  redis: TestRedis;
  s3: TestS3 | null;
  data: { path: string; cleanup(): void };
  server: TestServer;
  ftp: string;
  restart(): Promise<void>;
  items(): Promise<Item[]>;
  restBytes(id: string): Promise<Buffer>;
  close(): Promise<void>;
}

async function startSite(driver: 'fs' | 's3'): Promise<Site> {
  const redis = await startRedis();
  const s3 = driver === 's3' ? await startS3() : null;
  const data = tempDir();
  const port = await freePort();
  const ftpPort = await freePort();
  const env: Record<string, string> = {
    REDIS_URL: redis.url,
    NONDIVY_DATA_DIR: data.path,
    NONDIVY_ADMIN_PASSWORD: ADMIN,
    NONDIVY_FTP_PORT: String(ftpPort),
    NONDIVY_FTP_PASV_RANGE: await freePortRange(8),
    NONDIVY_MAX_UPLOAD_BYTES: '40MiB',
    // A frozen client's transfer is stopped (and what came is kept) after this long.
    NONDIVY_FTP_DATA_TIMEOUT_SECONDS: '2',
    ...(s3 ? { NONDIVY_BLOB_DRIVER: 's3', S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: s3.bucket } : {}),
  };
  let server: TestServer;
  try {
    server = await startServer(env, { port });
  } catch (err) {
    await redis.close();
    await s3?.close();
    data.cleanup();
    throw err;
  }
  const admin = await login(server.api, 'admin', ADMIN);
  for (const name of ['alice', 'bob']) {
    const res = await fetch(`${server.api}/users`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ username: name, password: `${name}-password`, role: 'member' }),
    });
    assert.equal(res.status, 201);
  }
  const site: Site = {
    redis,
    s3,
    data,
    server,
    ftp: `ftp://127.0.0.1:${ftpPort}`,
    async restart() {
      await site.server.stop();
      site.server = await startServer(env, { port });
    },
    async items() {
      const res = await fetch(`${site.server.api}/library?limit=200`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { items: Item[] }).items;
    },
    async restBytes(id) {
      const res = await fetch(`${site.server.api}/library/${id}/content`);
      assert.equal(res.status, 200);
      return Buffer.from(await res.arrayBuffer());
    },
    async close() {
      await site.server.stop();
      await redis.close();
      await s3?.close();
      data.cleanup();
    },
  };
  return site;
}

/** A raw control connection logged in as `user` (a member, `<user>-password`) or anonymous. */
async function session(s: Site, user: string | null): Promise<RawFtp> {
  const c = await RawFtp.open(s.server.ftpPort);
  const r = user ? await c.login(user, `${user}-password`) : await c.login();
  assert.equal(r?.code, 230, r?.text);
  return c;
}

/** Sends `bytes` by `directive` (STOR or APPE) on a new data connection; the 150 and the final reply. */
async function send(c: RawFtp, directive: string, path: string, bytes: Buffer): Promise<{ first: Reply | null; last: Reply | null }> {
  const data = await dataSocket(await c.epsv());
  data.on('error', () => undefined);
  const first = await c.send(`${directive} ${path}`);
  if (first?.code !== 150) {
    data.destroy();
    return { first, last: null };
  }
  data.end(bytes);
  return { first, last: await c.next(30_000) };
}

/**
 * Sends `bytes` by STOR (or APPE) and then resets the data connection (a TCP RST, as a dropped
 * network or a crashed client leaves it); the reply that follows.
 */
async function cutUpload(c: RawFtp, directive: string, path: string, bytes: Buffer): Promise<Reply | null> {
  const data = await dataSocket(await c.epsv());
  data.on('error', () => undefined);
  const opened = await c.send(`${directive} ${path}`);
  assert.equal(opened?.code, 150, opened?.text);
  await new Promise<void>((resolve, reject) => data.write(bytes, (err) => (err ? reject(err) : resolve())));
  await sleep(400); // let the server read what it was sent
  data.resetAndDestroy();
  return c.next(15_000);
}

/** SIZE of `path` in a session: the number, or the refusal's code as a negative number. */
async function size(c: RawFtp, path: string): Promise<number> {
  const r = await c.send(`SIZE ${path}`);
  return r?.code === 213 ? Number(r.text.slice(4)) : -(r?.code ?? 0);
}

/** Unfinished-upload state in Redis: the place index, the caps and the expiry schedule. */
function unfinishedKeys(s: Site): string[] {
  const found = s.redis.cli('--scan', '--pattern', 'nd:resumable:*').split('\n').filter(Boolean);
  const live = found.filter((k) => /:(at|by):|:expiring$|:parts$|:lock$/.test(k));
  const records = found.filter((k) => /^nd:resumable:[A-Za-z0-9_-]{22}$/.test(k));
  // A finished record lingers a while with a TTL (what it became); an unfinished one has no TTL.
  return [...live, ...records.filter((k) => Number(s.redis.cli('pttl', k)) < 0)];
}

/** What is staged in the blob store: fs staging files, or s3rver's objects other than whole blobs. */
function staged(s: Site): string[] {
  if (!s.s3) return [...files(join(s.data.path, 'blobs', 'staging')), ...files(join(s.data.path, 'blobs', 'tmp'))];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else out.push(join(dir, e.name).slice(s.s3!.directory.length));
    }
  };
  walk(s.s3.directory);
  return out.filter((f) => /tail|part|staging/i.test(f.replace(/_S3rver_\w+$/, '')));
}

/** Nothing of an unfinished upload left: no staged byte, no key, no library lease. */
function assertNothingLeft(s: Site) {
  assert.deepEqual(staged(s), [], 'no staged bytes');
  assert.deepEqual(unfinishedKeys(s), [], 'no unfinished upload key');
  assert.equal(s.redis.cli('zcard', 'nd:uploads'), '0', 'no library upload lease');
}

/** curl as a user runs it, in the background. */
function curl(args: string[]): { child: ChildProcess; trace: () => string; exited: Promise<number | null> } {
  const child = spawn('curl', ['-sS', '-v', '--max-time', '120', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let trace = '';
  child.stderr!.on('data', (d: Buffer) => (trace += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, trace: () => trace, exited };
}

/**
 * `curl -T` of `file` to `url` interrupted: once its data connection is open and bytes flow (rate
 * limited), curl is frozen (SIGSTOP, as a laptop lid closes) until the server's data timeout stops
 * the transfer, then killed. Resolves with what the owner's SIZE says is kept.
 */
async function interruptedCurl(s: Site, local: string, url: string, path: string): Promise<number> {
  const run = curl(['--ftp-create-dirs', '--limit-rate', '3M', '-T', local, url]);
  const alice = await session(s, 'alice');
  try {
    await within(20_000, () => /< 150 /.test(run.trace())).catch((err: Error) => {
      throw new Error(`${err.message}; curl said:\n${run.trace()}`);
    });
    await sleep(1500);
    run.child.kill('SIGSTOP');
    let kept = 0;
    await within(20_000, async () => (kept = await size(alice, path)) > 0);
    return kept;
  } finally {
    run.child.kill('SIGKILL');
    await run.exited;
    alice.close();
  }
}

for (const driver of ['fs', 's3'] as const) {
  describe(`curl -C - resumes an interrupted -T upload (${driver} driver)`, { timeout: 180_000 }, () => {
    let s: Site;
    let work: { path: string; cleanup(): void };
    before(async () => {
      s = await startSite(driver);
      work = tempDir();
    });
    after(async () => {
      await s?.close();
      work?.cleanup();
    });

    it('kept bytes shown to their owner only, REST refused to others and at the wrong offset, then curl -C - -T ends as the file', async () => {
      const file = randomBytes(24 * MiB + 4321);
      const local = join(work.path, 'clip.mp4');
      writeFileSync(local, file);
      const path = '/library/video/Trips/clip.mp4';
      const url = `ftp://alice:alice-password@127.0.0.1:${s.server.ftpPort}${path}`;
      const kept = await interruptedCurl(s, local, url, path);
      assert.ok(kept > 0 && kept < file.length, `kept ${kept}`);
      assert.ok(s.server.logs.some((l) => l.msg === 'resumable upload created (length deferred)'));
      assert.equal((await s.items()).length, 0, 'no item from an interrupted upload');

      if (driver === 'fs') {
        // Survives a restart of the server: the offset and hash state live in Redis, the bytes staged.
        await s.restart();
      }
      const bob = await session(s, 'bob');
      const anon = await session(s, null);
      const alice = await session(s, 'alice');
      try {
        assert.equal(await size(alice, path), kept, 'the owner sees where it stands');
        assert.equal(await size(bob, path), -550, 'nobody else sees it');
        assert.equal(await size(anon, path), -550);
        assert.equal((await bob.send(`REST ${kept}`))?.code, 350);
        const theirs = await bob.send(`STOR ${path}`);
        assert.equal(theirs?.code, 554, 'REST + STOR on another member\'s unfinished upload is refused');
        assert.match(theirs!.text, /no unfinished upload/);
        assert.equal((await bob.send(`DELE ${path}`))?.code, 550, 'nor may he delete it');
        assert.equal((await alice.send(`REST ${kept - 1}`))?.code, 350);
        const wrong = await alice.send(`STOR ${path}`);
        assert.equal(wrong?.code, 554);
        assert.match(wrong!.text, new RegExp(`REST ${kept}`), 'the refusal names the offset to continue from');
        assert.equal(await size(alice, path), kept, 'a refused REST changes nothing');
      } finally {
        bob.close();
        anon.close();
        alice.close();
      }

      const resumed = curl(['-C', '-', '-T', local, url]);
      assert.equal(await resumed.exited, 0, resumed.trace());
      assert.match(resumed.trace(), new RegExp(`< 213 ${kept}`));
      assert.match(resumed.trace(), /> APPE /, 'curl continued at the kept offset');
      assert.match(resumed.trace(), /< 226 Transfer complete: stored as \/library\/video\/Trips\/clip\.mp4/);
      const item = (await s.items()).find((i) => i.filename === 'clip.mp4');
      assert.ok(item);
      assert.deepEqual([item.kind, item.folder, item.size, item.sha256, item.uploadedBy], ['video', 'Trips', file.length, sha(file), 'alice']);
      assert.equal(sha(await s.restBytes(item.id)), sha(file), 'the stored bytes are the file');
      assertNothingLeft(s);

      // The finished item is never appended to, by its owner or anyone else.
      const alice2 = await session(s, 'alice');
      const bob2 = await session(s, 'bob');
      try {
        assert.equal(await size(alice2, path), file.length);
        assert.equal((await alice2.send('REST 10'))?.code, 350);
        const rest = await alice2.send(`STOR ${path}`);
        assert.equal(rest?.code, 550, 'REST + STOR onto a finished item');
        assert.match(rest!.text, /finished file/);
        assert.equal((await send(alice2, 'APPE', path, Buffer.from('more'))).first?.code, 550, 'APPE onto a finished item');
        assert.equal((await send(bob2, 'APPE', path, Buffer.from('more'))).first?.code, 550);
      } finally {
        alice2.close();
        bob2.close();
      }
      // curl -C - again: SIZE gives the whole length, so curl sends nothing.
      const again = curl(['-C', '-', '-T', local, url]);
      assert.equal(await again.exited, 0, again.trace());
      assert.match(again.trace(), new RegExp(`< 213 ${file.length}`));
      assert.doesNotMatch(again.trace(), /> (APPE|STOR) /);
      assert.equal((await s.items()).find((i) => i.id === item.id)?.sha256, sha(file), 'its bytes are unchanged');
      assertNothingLeft(s);
    });
  });
}

describe('FTP resumable uploads: lftp, plain STOR, DELE, limits, shutdown (fs driver)', { timeout: 180_000 }, () => {
  let s: Site;
  let work: { path: string; cleanup(): void };
  before(async () => {
    s = await startSite('fs');
    work = tempDir();
  });
  after(async () => {
    await s?.close();
    work?.cleanup();
  });

  const lftp = (commands: string) =>
    spawnSync('lftp', ['-c', `debug 5; set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes; set xfer:clobber on; open -u alice,alice-password 127.0.0.1:${s.server.ftpPort}; ${commands}`], {
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('a reset data connection keeps what came (426 says where to continue); lftp put -c continues it with REST + STOR', async () => {
    const file = randomBytes(6 * MiB + 99);
    const local = join(work.path, 'notes.txt');
    writeFileSync(local, file);
    const alice = await session(s, 'alice');
    let kept: number;
    try {
      const cut = await cutUpload(alice, 'STOR', '/upload/notes.txt', file.subarray(0, 3 * MiB));
      assert.equal(cut?.code, 426, cut?.text);
      kept = await size(alice, '/upload/notes.txt');
      assert.ok(kept > 0 && kept <= 3 * MiB, `kept ${kept}`);
      assert.match(cut!.text, new RegExp(`${kept} bytes .* are kept; continue with REST ${kept}`));
    } finally {
      alice.close();
    }
    const put = lftp(`put -c ${local} -o /upload/notes.txt`);
    assert.equal(put.status, 0, put.stderr + put.stdout);
    assert.match(put.stderr, new RegExp(`REST ${kept}`), 'lftp continued with REST at the kept offset');
    const item = (await s.items()).find((i) => i.filename === 'notes.txt');
    assert.ok(item);
    assert.deepEqual([item.kind, item.size, item.sha256], ['document', file.length, sha(file)]);
    assertNothingLeft(s);
  });

  it('a plain STOR starts again from zero (the kept bytes are freed); APPE with nothing kept stores a new file', async () => {
    const alice = await session(s, 'alice');
    try {
      const cut = await cutUpload(alice, 'STOR', '/library/document/draft.txt', randomBytes(2 * MiB));
      assert.equal(cut?.code, 426);
      assert.ok((await size(alice, '/library/document/draft.txt')) > 0);
      assert.equal(staged(s).length, 1, 'one staging file');
      const v2 = randomBytes(MiB + 3);
      const { last } = await send(alice, 'STOR', '/library/document/draft.txt', v2);
      assert.match(last?.text ?? '', /^226 /);
      const item = (await s.items()).find((i) => i.filename === 'draft.txt');
      assert.deepEqual([item?.size, item?.sha256], [v2.length, sha(v2)], 'the whole second file, nothing of the first');
      assertNothingLeft(s);

      const fresh = randomBytes(5000);
      assert.match((await send(alice, 'APPE', '/library/other/appended.bin', fresh)).last?.text ?? '', /^226 /);
      assert.equal((await s.items()).find((i) => i.filename === 'appended.bin')?.sha256, sha(fresh));
      assertNothingLeft(s);
    } finally {
      alice.close();
    }
  });

  it('DELE drops one\'s own unfinished upload and its bytes; only its owner may', async () => {
    const alice = await session(s, 'alice');
    const bob = await session(s, 'bob');
    try {
      assert.equal((await cutUpload(alice, 'STOR', '/library/other/gone.bin', randomBytes(MiB)))?.code, 426);
      const kept = await size(alice, '/library/other/gone.bin');
      assert.ok(kept > 0);
      assert.equal((await bob.send('DELE /library/other/gone.bin'))?.code, 550);
      assert.equal(await size(alice, '/library/other/gone.bin'), kept, 'still there after bob\'s DELE');
      const dele = await alice.send('DELE /library/other/gone.bin');
      assert.equal(dele?.code, 250);
      assert.match(dele!.text, /unfinished upload/);
      assert.equal(await size(alice, '/library/other/gone.bin'), -550);
      assert.equal((await alice.send('DELE /library/other/gone.bin'))?.code, 550);
      assertNothingLeft(s);
    } finally {
      alice.close();
      bob.close();
    }
  });

  it('bytes past the upload limit remove the whole upload, kept bytes included (552)', async () => {
    const alice = await session(s, 'alice');
    try {
      assert.equal((await cutUpload(alice, 'STOR', '/library/other/huge.bin', randomBytes(MiB)))?.code, 426);
      const kept = await size(alice, '/library/other/huge.bin');
      assert.ok(kept > 0);
      const { first, last } = await send(alice, 'APPE', '/library/other/huge.bin', randomBytes(40 * MiB));
      assert.equal(first?.code, 150);
      assert.match(last?.text ?? '', /^552 .*limited to/, last?.text);
      assert.equal(await size(alice, '/library/other/huge.bin'), -550, 'nothing kept');
      assert.equal((await s.items()).find((i) => i.filename === 'huge.bin'), undefined);
      assertNothingLeft(s);
    } finally {
      alice.close();
    }
  });

  it('a server shutdown mid-STOR keeps what arrived; after the restart APPE finishes it', async () => {
    const file = randomBytes(4 * MiB + 1);
    const alice = await session(s, 'alice');
    const data = await dataSocket(await alice.epsv());
    data.on('error', () => undefined);
    try {
      assert.equal((await alice.send('STOR /library/audio/live.flac'))?.code, 150);
      await new Promise<void>((resolve) => data.write(file.subarray(0, 3 * MiB), () => resolve()));
      await sleep(400);
      await s.restart(); // SIGTERM: the transfer is stopped and checkpointed before the process exits
      assert.ok(s.server.logs.length > 0);
    } finally {
      data.destroy();
      alice.close();
    }
    const again = await session(s, 'alice');
    try {
      const kept = await size(again, '/library/audio/live.flac');
      assert.equal(kept, 3 * MiB, 'every byte that arrived was kept');
      const { last } = await send(again, 'APPE', '/library/audio/live.flac', file.subarray(kept));
      assert.match(last?.text ?? '', /^226 .*stored as \/library\/audio\/live\.flac/);
    } finally {
      again.close();
    }
    const item = (await s.items()).find((i) => i.filename === 'live.flac');
    assert.deepEqual([item?.size, item?.sha256], [file.length, sha(file)]);
    assertNothingLeft(s);
  });
});
