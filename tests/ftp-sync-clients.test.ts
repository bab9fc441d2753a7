/**
 * Sync tools against the FTP door: lftp's `mirror -R` and rclone's `copy` into /upload/, then back,
 * byte-exact and (lftp) with the files' times kept through MFMT; a second run finds everything
 * already there and transfers nothing, because /upload/ lists the member's own items with their
 * sizes and times. Folders are flat: sub-folders are not part of the tree.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
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
