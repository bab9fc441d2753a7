/**
 * Device-to-device sharing with the `nondivy` CLI run as child processes (a sender and a receiver)
 * against the standalone server and a real Redis: direct and relayed transfers, what the relay
 * leaves behind (nothing), its memory with 200 MiB, either side killed mid-transfer, offline
 * devices, rejection, hostile offers (names, sizes, hashes) and wrong tokens.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bearer, login } from './helpers/http.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';

const CLI = 'clients/cli/bin/nondivy.mjs';
const MiB = 1024 * 1024;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
const shaFile = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<number | null>;
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
}

async function within<T>(ms: number, probe: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await Promise.resolve(probe()).catch(() => undefined);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`condition not met within ${ms} ms`);
}

/** A file of `size` random bytes with a 32-byte marker every MiB (to look for it later). */
function makeFile(path: string, size: number, marker: Buffer) {
  const fd = openSync(path, 'w');
  const block = randomBytes(MiB);
  for (let written = 0; written < size; ) {
    const n = Math.min(MiB, size - written);
    marker.copy(block, 0);
    block.writeUInt32LE(written / MiB, 40);
    writeSync(fd, block, 0, n);
    written += n;
  }
  closeSync(fd);
}

describe('device-to-device sharing with the nondivy CLI', () => {
  let redis: TestRedis;
  let server: TestServer;
  let data: { path: string; cleanup(): void };
  let work: { path: string; cleanup(): void };
  let alice: string;
  let bob: string;
  const runs: Run[] = [];

  const cli = (args: string[], env: Record<string, string>): Run => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: work.path, XDG_CONFIG_HOME: join(work.path, 'config'), NONDIVY_SERVER: server.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    const run = { child, stdout: () => out, stderr: () => err, done: new Promise<number | null>((r) => child.once('exit', (code) => r(code))) };
    runs.push(run);
    return run;
  };
  const as = (token: string, device: string) => ({ NONDIVY_TOKEN: token, NONDIVY_DEVICE: device });
  const online = (name: string) =>
    within(10_000, async () => {
      const { devices } = (await (await fetch(`${server.api}/devices`, { headers: bearer(alice) })).json()) as { devices: { id: string; name: string }[] };
      return devices.find((d) => d.name === name);
    });
  const receiver = async (name: string, dir: string, extra: string[] = []) => {
    const run = cli(['receive', '--dir', dir, '--yes', '--once', '--json', '--listen', '127.0.0.1:0', ...extra], as(bob, name));
    const device = await online(name);
    return { run, device };
  };
  const events = (run: Run) => run.stdout().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; [k: string]: unknown });
  const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

  before(async () => {
    redis = await startRedis();
    data = tempDir();
    work = tempDir('nondivy-share-');
    server = await startServer({ REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: 'admin-password', NONDIVY_RELAY_WAIT_SECONDS: '10' });
    const admin = await login(server.api, 'admin', 'admin-password');
    for (const name of ['alice', 'bob']) {
      const res = await fetch(`${server.api}/users`, { method: 'POST', headers: { ...bearer(admin), 'content-type': 'application/json' }, body: JSON.stringify({ username: name, password: `${name}-password` }) });
      assert.equal(res.status, 201);
    }
    alice = await login(server.api, 'alice', 'alice-password');
    bob = await login(server.api, 'bob', 'bob-password');
  });
  after(async () => {
    for (const r of runs) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    await server?.stop();
    await redis?.close();
    data?.cleanup();
    work?.cleanup();
  });

  it('sends two files directly to a receiving device; both sides report success; bytes checked', async () => {
    const dir = join(work.path, 'direct');
    const a = join(work.path, 'photo.jpg');
    const b = join(work.path, 'notes.txt');
    writeFileSync(a, randomBytes(3 * MiB + 5));
    writeFileSync(b, 'hello from alice\n');
    const { run: recv } = await receiver('bob-laptop', dir);
    const send = cli(['send', a, b, '--to', 'bob-laptop', '--json'], as(alice, 'alice-phone'));
    assert.equal(await send.done, 0, send.stderr());
    assert.equal(await recv.done, 0, recv.stderr());
    const result = JSON.parse(send.stdout()) as { state: string; route: string };
    assert.equal(result.state, 'completed');
    assert.equal(result.route, 'direct');
    assert.deepEqual(readdirSync(dir).sort(), ['notes.txt', 'photo.jpg']);
    assert.equal(shaFile(join(dir, 'photo.jpg')), shaFile(a));
    assert.equal(shaFile(join(dir, 'notes.txt')), shaFile(b));
    assert.ok(events(recv).some((e) => e.event === 'received'));
    assert.ok(!server.logs.some((l) => l.msg === 'file relayed'), 'nothing went through the relay');
  });

  it('falls back to the relay when the receiver cannot be reached directly — and nothing of the file is stored anywhere', async () => {
    const dir = join(work.path, 'relayed');
    const marker = randomBytes(32);
    const src = join(work.path, 'relayed.bin');
    makeFile(src, 5 * MiB + 123, marker);
    const itemsBefore = Number(redis.cli('zcard', 'nd:items:created'));
    const { run: recv } = await receiver('bob-tablet', dir, ['--advertise-url', 'http://127.0.0.1:1']);
    const send = cli(['send', src, '--to', 'bob-tablet', '--json'], as(alice, 'alice-phone'));
    assert.equal(await send.done, 0, send.stderr());
    assert.equal(await recv.done, 0, recv.stderr());
    assert.equal((JSON.parse(send.stdout()) as { route: string }).route, 'relay');
    assert.equal(shaFile(join(dir, 'relayed.bin')), shaFile(src));
    assert.ok(server.logs.some((l) => l.msg === 'file relayed'));
    // Redis: every value, uncompressed, in one snapshot; the data folder: every file. No marker anywhere.
    redis.cli('config', 'set', 'rdbcompression', 'no');
    const snapshot = join(work.path, 'snapshot.rdb');
    spawnSync('redis-cli', ['-p', String(redis.port), '--rdb', snapshot], { encoding: 'utf8' });
    assert.ok(statSync(snapshot).size > 0);
    assert.equal(readFileSync(snapshot).indexOf(marker), -1, 'no relayed bytes in Redis');
    for (const f of files(data.path)) assert.equal(readFileSync(f).indexOf(marker), -1, `no relayed bytes in ${f}`);
    assert.deepEqual(files(join(data.path, 'blobs')), [], 'nothing in the blob store');
    assert.equal(Number(redis.cli('zcard', 'nd:items:created')), itemsBefore);
  });

  it('200 MiB through the relay with the gateway\'s memory flat', async () => {
    const dir = join(work.path, 'big');
    const src = join(work.path, 'big.bin');
    makeFile(src, 200 * MiB, randomBytes(32));
    const pid = server.child.pid!;
    const { run: recv } = await receiver('bob-nas', dir, ['--advertise-url', 'http://127.0.0.1:1']);
    const baseline = rssOf(pid);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 25);
    const send = cli(['send', src, '--to', 'bob-nas', '--json'], as(alice, 'alice-phone'));
    const code = await send.done;
    clearInterval(sampler);
    assert.equal(code, 0, send.stderr());
    assert.equal(await recv.done, 0, recv.stderr());
    assert.equal(shaFile(join(dir, 'big.bin')), shaFile(src));
    const growth = (peak - baseline) / MiB;
    console.log(`# gateway RSS during 200 MiB relayed: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB`);
    assert.ok(growth < 48, `gateway RSS grew by ${growth.toFixed(1)} MiB`);
  });

  it('receiver killed mid-transfer: the sender fails clearly and the server keeps nothing', async () => {
    const dir = join(work.path, 'killed-receiver');
    const src = join(work.path, 'slow1.bin');
    makeFile(src, 200 * MiB, randomBytes(32));
    const { run: recv } = await receiver('bob-flaky', dir, ['--advertise-url', 'http://127.0.0.1:1']);
    const send = cli(['send', src, '--to', 'bob-flaky', '--json'], as(alice, 'alice-phone'));
    await within(20_000, () => files(dir).some((f) => statSync(f).size > 0));
    recv.child.kill('SIGKILL');
    const code = await send.done;
    assert.notEqual(code, 0);
    assert.match(send.stderr(), /receiver|failed|went away|closed|reset/i);
    await within(5000, () => server.logs.some((l) => l.msg === 'transfer changed' && l.state === 'failed'));
    assert.deepEqual(files(join(data.path, 'blobs')), []);
  });

  it('sender killed mid-transfer: the receiver deletes the partial file and reports the failure', async () => {
    const dir = join(work.path, 'killed-sender');
    const src = join(work.path, 'slow2.bin');
    makeFile(src, 200 * MiB, randomBytes(32));
    const { run: recv } = await receiver('bob-patient', dir, ['--advertise-url', 'http://127.0.0.1:1']);
    const send = cli(['send', src, '--to', 'bob-patient', '--json'], as(alice, 'alice-phone'));
    await within(20_000, () => files(dir).some((f) => statSync(f).size > 0));
    send.child.kill('SIGKILL');
    assert.equal(await recv.done, 1, recv.stdout() + recv.stderr());
    assert.ok(events(recv).some((e) => e.event === 'failed'));
    assert.deepEqual(files(dir), [], 'no partial file left');
  });

  it('an offer to a device that is not online fails at once; a rejected offer ends clearly on both sides', async () => {
    const src = join(work.path, 'small.txt');
    writeFileSync(src, 'small');
    const ghost = cli(['send', src, '--to', 'nobody-here'], as(alice, 'alice-phone'));
    assert.equal(await ghost.done, 1);
    assert.match(ghost.stderr(), /nobody-here/);
    // No terminal and no --yes: the receiver rejects.
    const dir = join(work.path, 'rejecting');
    const recv = cli(['receive', '--dir', dir, '--once', '--json', '--listen', '127.0.0.1:0'], as(bob, 'bob-picky'));
    await online('bob-picky');
    const send = cli(['send', src, '--to', 'bob-picky'], as(alice, 'alice-phone'));
    assert.equal(await send.done, 1);
    assert.match(send.stderr(), /reject|not accepted/i);
    assert.notEqual(await recv.done, 0);
    assert.ok(events(recv).some((e) => e.event === 'rejected'));
    assert.deepEqual(files(dir), []);
  });

  it('hostile offers: names are sanitised and never overwrite, extra or wrong bytes are refused and removed, wrong tokens are refused', async () => {
    const api = (path: string, init: RequestInit & { json?: unknown } = {}) => {
      const headers = new Headers(init.headers);
      if (init.json !== undefined) headers.set('content-type', 'application/json');
      return fetch(`${server.api}${path}`, { ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body });
    };
    // A hand-made sender (the API, not the CLI), so it can lie.
    const reg = (await (await api('/devices', { method: 'POST', headers: bearer(alice), json: { name: 'mallory-box' } })).json()) as { device: { id: string }; token: string };
    const dev = { 'x-device-token': reg.token };
    const dir = join(work.path, 'hostile');
    const offerAndSend = async (name: string, offered: Buffer, sent: Buffer, recvName: string) => {
      const { run, device } = await receiver(recvName, dir, ['--advertise-url', 'http://127.0.0.1:1']);
      const t = (await (await api('/transfers', { method: 'POST', headers: dev, json: { from: reg.device.id, to: device.id, files: [{ name, size: offered.length, sha256: sha(offered) }] } })).json()) as { id: string };
      await within(10_000, async () => ((await (await api(`/transfers/${t.id}`, { headers: dev })).json()) as { state: string }).state === 'accepted');
      await api(`/transfers/${t.id}/route`, { method: 'POST', headers: dev, json: { route: 'relay' } });
      const put = await api(`/transfers/${t.id}/files/0`, { method: 'PUT', headers: { ...dev, 'content-type': 'application/octet-stream' }, body: sent });
      const answer = { status: put.status, body: await put.text() };
      return { code: await run.done, run, answer };
    };
    const good = Buffer.from('the real content');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'evil.txt'), 'already here');
    const r1 = await offerAndSend('../../etc/evil.txt', good, good, 'bob-safe-1');
    assert.equal(r1.code, 0, r1.run.stderr());
    assert.deepEqual(r1.answer, { status: 204, body: '' }, 'the sender is told its bytes were delivered');
    assert.equal(readFileSync(join(dir, 'evil.txt'), 'utf8'), 'already here', 'never overwritten');
    assert.deepEqual(readFileSync(join(dir, 'evil (1).txt')), good);
    assert.ok(!existsSync(join(work.path, 'etc')), 'nothing outside the folder');

    const r2 = await offerAndSend('tampered.bin', good, Buffer.from('the fake content'), 'bob-safe-2');
    assert.equal(r2.code, 1);
    // The relay carries exactly the offered number of bytes; the hash is the receiver's check.
    assert.deepEqual(r2.answer, { status: 204, body: '' });
    assert.ok(!readdirSync(dir).some((f) => f.includes('tampered')), 'a file with the wrong hash is removed');

    // Wrong tokens: the direct endpoint and the relay refuse.
    const { run, device } = await receiver('bob-safe-3', dir);
    const directUrl = ((await (await api('/devices', { headers: bearer(alice) })).json()) as { devices: { id: string; directUrl: string }[] }).devices.find((d) => d.id === device.id)!.directUrl;
    const t = (await (await api('/transfers', { method: 'POST', headers: dev, json: { from: reg.device.id, to: device.id, files: [{ name: 'x.bin', size: 4, sha256: sha(Buffer.from('abcd')) }] } })).json()) as { id: string };
    await within(10_000, async () => ((await (await api(`/transfers/${t.id}`, { headers: dev })).json()) as { state: string }).state === 'accepted');
    const forged = await fetch(`${directUrl}/transfers/${t.id}/files/0`, { method: 'PUT', headers: { authorization: `Bearer ${randomBytes(32).toString('base64url')}` }, body: Buffer.from('abcd') });
    assert.ok([401, 403].includes(forged.status), `direct endpoint answered ${forged.status}`);
    const stolen = await api(`/transfers/${t.id}/files/0`, { headers: dev });
    assert.equal(stolen.status, 403, 'the sender cannot download what it offers');
    await api(`/transfers/${t.id}`, { method: 'DELETE', headers: dev, json: { reason: 'test over' } });
    await run.done;
    assert.ok(!readdirSync(dir).some((f) => f.startsWith('x.bin') || f.includes('nondivy-part')));
  });
});
