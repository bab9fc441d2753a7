/**
 * `nondivy upload` resumes: the CLI as a child process sends a 64 MiB file over tus through a TCP
 * proxy (tests/helpers/tcp-proxy.ts) that cuts the connection once (the run continues by itself from
 * the server's offset), then cuts it again and the CLI is interrupted (SIGINT, as Ctrl-C): the
 * upload's record stays in the state folder (file 0600, folder 0700); the same command run again says
 * "resuming at" the server's offset, sends only the rest (counted by the proxy), and the item's SHA-256
 * is the file's; the record is gone, no staged byte and no unfinished upload remain. A file changed
 * since its interrupted upload starts again (the old upload is ended on the server: 404); a folder
 * upload with --folder still places its files in their folders; the server's refusals (too large, a
 * folder through a file) are printed in its words at once, with no retry and no record, and a server
 * that is not there is said at once. The server killed mid-upload and started again: the run waits
 * and continues from what the server kept, sending only the rest.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bearer, login } from './helpers/http.js';
import { freePort, startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

const CLI = 'clients/cli/bin/nondivy.mjs';
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

describe('nondivy upload resumes an interrupted upload', () => {
  let redis: TestRedis;
  let data: { path: string; cleanup(): void };
  let work: { path: string; cleanup(): void };
  let server: TestServer;
  let token: string;
  const proxies: TcpProxy[] = [];
  const children: ReturnType<typeof spawn>[] = [];

  const serverEnv = () => ({ REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: 'admin-password', NONDIVY_MAX_UPLOAD_BYTES: '100MiB' });
  const recordsDir = () => join(work.path, '.local', 'state', 'nondivy', 'uploads');
  const records = () => {
    try {
      return readdirSync(recordsDir()).filter((f) => f.endsWith('.json'));
    } catch {
      return [];
    }
  };
  const staging = () => readdirSync(join(data.path, 'blobs', 'staging'));
  /** Unfinished uploads in Redis (each is in the expiry index until it finishes or is ended). */
  const unfinished = () => Number(redis.cli('zcard', 'nd:resumable:expiring'));

  const cli = (server: string, args: string[], onStart?: (child: ReturnType<typeof spawn>) => void) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: work.path, NONDIVY_SERVER: server, NONDIVY_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    onStart?.(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    return new Promise<Run>((r) => child.once('exit', (code, signal) => r({ code, signal, out, err })));
  };
  const proxy = async () => {
    const p = await startTcpProxy(server.port);
    proxies.push(p);
    return p;
  };
  const itemOf = async (out: string) => {
    const id = /id:\s+([A-Za-z0-9_-]{22})/.exec(out)?.[1];
    assert.ok(id, out);
    const res = await fetch(`${server.api}/library/${id}`, { headers: bearer(token) });
    assert.equal(res.status, 200);
    return (await res.json()) as { id: string; sha256: string; size: number; folder: string; title: string; path: string };
  };
  const contentSha = async (id: string) => sha(Buffer.from(await (await fetch(`${server.api}/library/${id}/content`, { headers: bearer(token) })).arrayBuffer()));

  before(async () => {
    redis = await startRedis();
    data = tempDir();
    work = tempDir('nondivy-cliresume-');
    server = await startServer(serverEnv(), { port: await freePort() });
    token = await login(server.api, 'admin', 'admin-password');
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const p of proxies) await p.close().catch(() => undefined);
    await server?.stop();
    await redis?.close();
    data?.cleanup();
    work?.cleanup();
  });

  it('continues within a run after a cut, and from the server\'s offset when run again after Ctrl-C', async () => {
    const bytes = randomBytes(64 * MiB);
    const file = join(work.path, 'film.bin');
    writeFileSync(file, bytes);
    const args = ['upload', file, '--kind', 'video', '--tags', 'resume,test', '--title', 'A resumed film'];

    // Run 1: one cut at 16 MiB (resumed within the run), then a cut at 40 MiB and Ctrl-C.
    const first = await proxy();
    let child: ReturnType<typeof spawn> | undefined;
    first.at(16 * MiB, () => first.cut());
    first.at(40 * MiB, () => {
      first.cut();
      child!.kill('SIGINT');
    });
    const run1 = await cli(first.url, args, (c) => (child = c));
    assert.equal(run1.code, 130, `interrupted: ${run1.out}\n${run1.err}`);
    assert.match(run1.err, /film\.bin: connection lost \([^)]+\); resuming in \d+ s/);
    assert.match(run1.out, /film\.bin: resuming at [\d.]+ MiB of 64\.0 MiB \(\d+%, byte \d+\)/, 'the run itself resumed after the first cut');
    assert.match(run1.err, /film\.bin: interrupted; run the same command again to resume/);
    assert.doesNotMatch(run1.out, /^uploaded/m);

    // What the CLI keeps: one record, its owner's only, naming the upload; the server has a part of it.
    assert.equal(records().length, 1);
    const recordPath = join(recordsDir(), records()[0]!);
    assert.equal(statSync(recordPath).mode & 0o777, 0o600);
    assert.equal(statSync(recordsDir()).mode & 0o777, 0o700);
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as { url: string; path: string; size: number };
    assert.equal(record.path, file);
    assert.equal(record.size, bytes.length);
    const uploadUrl = record.url.replace(first.url, server.url);
    const head = await fetch(uploadUrl, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0', ...bearer(token) } });
    assert.equal(head.status, 200);
    const offset = Number(head.headers.get('upload-offset'));
    assert.ok(offset >= 16 * MiB && offset < bytes.length, `the server holds ${offset} bytes`);

    // Run 2, through the same address (the record is the site's), counting: resumes at the server's offset and sends only the rest.
    const sentBefore = first.bytesUp;
    const run2 = await cli(first.url, args);
    assert.equal(run2.code, 0, `${run2.out}\n${run2.err}`);
    // (The server may still have been writing what reached it before the cut when it was asked.)
    const resumedAt = Number(/film\.bin: resuming at [\d.]+ MiB of 64\.0 MiB \(\d+%, byte (\d+)\)/.exec(run2.out)?.[1]);
    assert.ok(resumedAt >= offset && resumedAt < bytes.length, `run 2 resumed at ${resumedAt}, the server had ${offset}: ${run2.out}`);
    // Through the proxy: the missing bytes plus a few requests' heads, not the file again.
    const sentByRun2 = first.bytesUp - sentBefore;
    assert.ok(sentByRun2 >= bytes.length - resumedAt && sentByRun2 < bytes.length - resumedAt + 64 * 1024, `run 2 sent ${sentByRun2} bytes for the ${bytes.length - resumedAt} missing`);
    const item = await itemOf(run2.out);
    assert.equal(item.sha256, sha(bytes));
    assert.equal(item.size, bytes.length);
    assert.equal(item.title, 'A resumed film');
    assert.match(run2.out, new RegExp(`sha256:\\s+${sha(bytes)}`));
    assert.equal(await contentSha(item.id), sha(bytes));

    // Nothing left: no record, no staged byte, no unfinished upload.
    assert.deepEqual(records(), []);
    assert.deepEqual(staging(), []);
    assert.equal(unfinished(), 0);
  });

  it('starts again when the file changed since its interrupted upload, ending the old one on the server', async () => {
    const file = join(work.path, 'notes.bin');
    writeFileSync(file, randomBytes(24 * MiB));
    const p = await proxy();
    let child: ReturnType<typeof spawn> | undefined;
    p.at(8 * MiB, () => {
      p.cut();
      child!.kill('SIGINT');
    });
    const run1 = await cli(p.url, ['upload', file], (c) => (child = c));
    assert.equal(run1.code, 130, `${run1.out}\n${run1.err}`);
    assert.equal(records().length, 1);
    assert.equal(staging().length, 1);
    const oldUrl = (JSON.parse(readFileSync(join(recordsDir(), records()[0]!), 'utf8')) as { url: string }).url.replace(p.url, server.url);

    const changed = randomBytes(20 * MiB);
    writeFileSync(file, changed);
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const run2 = await cli(p.url, ['upload', file]);
    assert.equal(run2.code, 0, `${run2.out}\n${run2.err}`);
    assert.doesNotMatch(run2.out, /resuming at/);
    assert.equal((await itemOf(run2.out)).sha256, sha(changed));
    assert.deepEqual(records(), []);
    assert.deepEqual(staging(), [], 'the stale upload was ended on the server');
    assert.equal(unfinished(), 0);
    const gone = await fetch(oldUrl, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0', ...bearer(token) } });
    assert.equal(gone.status, 404);
  });

  it('uploads a folder with --folder over tus, each file in its folder', async () => {
    const dir = join(work.path, 'Kind of Blue');
    mkdirSync(join(dir, 'CD1'), { recursive: true });
    const a = randomBytes(300 * 1024);
    writeFileSync(join(dir, 'CD1', 'So What.flac'), a);
    writeFileSync(join(dir, 'cover.txt'), 'blue\n');
    writeFileSync(join(dir, 'empty.txt'), '');
    const run = await cli(server.url, ['upload', dir, '--kind', 'audio', '--folder', 'Miles Davis', '--tags', 'jazz']);
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /3 files uploaded/);
    const res = await fetch(`${server.api}/library?kind=audio&under=${encodeURIComponent('Miles Davis')}&limit=10`, { headers: bearer(token) });
    const items = ((await res.json()) as { items: { path: string; sha256: string; tags: string[]; size: number }[] }).items;
    const byPath = new Map(items.map((i) => [i.path, i]));
    assert.equal(byPath.get('/library/audio/Miles Davis/Kind of Blue/CD1/So What.flac')?.sha256, sha(a));
    assert.equal(byPath.get('/library/audio/Miles Davis/Kind of Blue/cover.txt')?.size, 5);
    assert.equal(byPath.get('/library/audio/Miles Davis/Kind of Blue/empty.txt')?.size, 0);
    assert.deepEqual(byPath.get('/library/audio/Miles Davis/Kind of Blue/cover.txt')?.tags, ['jazz']);
    assert.deepEqual(records(), []);
  });

  it('prints the server\'s refusals in words, keeps no record, and says at once when the server is not there', async () => {
    // Over the server's largest upload (100 MiB here): refused at creation, before a byte is sent.
    const big = join(work.path, 'too big.bin');
    writeFileSync(big, '');
    truncateSync(big, 101 * MiB);
    const p = await proxy();
    const started = Date.now();
    const tooBig = await cli(p.url, ['upload', big]);
    assert.equal(tooBig.code, 1, tooBig.err);
    assert.match(tooBig.err, /^nondivy: .*(larger|over|most|exceed|limit).*$/im);
    assert.doesNotMatch(tooBig.err, /HTTP 413|resuming in|run the same command again/);
    assert.ok(p.bytesUp < 64 * 1024, `${p.bytesUp} bytes went up for a refused upload`);
    assert.ok(Date.now() - started < 10_000, 'a refusal is not retried');
    assert.deepEqual(records(), []);

    // A folder through a file: the server's words, not a retry.
    const note = join(work.path, 'liner.txt');
    writeFileSync(note, 'notes\n');
    const placed = await cli(server.url, ['upload', note, '--kind', 'document', '--folder', 'Sleeves']);
    assert.equal(placed.code, 0, placed.err);
    const through = join(work.path, 'inner.txt');
    writeFileSync(through, 'inner\n');
    const conflictStarted = Date.now();
    const blocked = await cli(server.url, ['upload', through, '--kind', 'document', '--folder', 'Sleeves/liner.txt']);
    assert.equal(blocked.code, 1, `${blocked.out}\n${blocked.err}`);
    assert.match(blocked.err, /^nondivy: .*liner\.txt.*$/m);
    assert.doesNotMatch(blocked.err, /HTTP 409|resuming in/);
    assert.ok(Date.now() - conflictStarted < 10_000, 'a refusal is not retried');
    assert.deepEqual(records(), []);
    assert.deepEqual(staging(), []);

    // Nothing listening: one line at once, no waiting through the retries.
    const closed = await freePort();
    const unreachableStarted = Date.now();
    const nobody = await cli(`http://127.0.0.1:${closed}`, ['upload', through]);
    assert.equal(nobody.code, 1);
    assert.match(nobody.err, new RegExp(`^nondivy: cannot reach the Nondivy server at http://127\\.0\\.0\\.1:${closed} \\(`, 'm'));
    assert.ok(Date.now() - unreachableStarted < 10_000);
    assert.deepEqual(records(), []);
  });

  it('waits through a restart of the server mid-upload and continues by itself', async () => {
    // The server makes what it received durable every 16 MiB (fs): killed past 40 MiB, it keeps at least 16.
    const bytes = randomBytes(48 * MiB);
    const file = join(work.path, 'restart.bin');
    writeFileSync(file, bytes);
    const p = await proxy();
    let restarted: Promise<void> | undefined;
    let upAtRestart = 0;
    p.at(40 * MiB, () => {
      restarted = (async () => {
        await server.kill();
        server = await startServer(serverEnv(), { port: server.port });
        upAtRestart = p.bytesUp;
      })();
    });
    const run = await cli(p.url, ['upload', file, '--kind', 'video']);
    await restarted;
    assert.equal(run.code, 0, `${run.out}\n${run.err}`);
    assert.match(run.err, /restart\.bin: connection lost \([^)]+\); resuming in \d+ s/);
    // It went on from what the server had kept, not from zero, and sent only the rest after the restart.
    const resumedAt = [...run.out.matchAll(/restart\.bin: resuming at [\d.]+ \w+ of 48\.0 MiB \(\d+%, byte (\d+)\)/g)].map((m) => Number(m[1]));
    const last = resumedAt.at(-1) ?? 0;
    assert.ok(last >= 16 * MiB, `resumed at ${resumedAt.join(', ')}\n${run.out}\n${run.err}`);
    const afterRestart = p.bytesUp - upAtRestart;
    assert.ok(afterRestart >= bytes.length - last && afterRestart < bytes.length - last + 256 * 1024, `${afterRestart} bytes went up after the restart for the ${bytes.length - last} missing`);
    const item = await itemOf(run.out);
    assert.equal(item.sha256, sha(bytes));
    assert.equal(await contentSha(item.id), sha(bytes));
    assert.deepEqual(records(), []);
    assert.deepEqual(staging(), []);
    assert.equal(unfinished(), 0);
  });
});
