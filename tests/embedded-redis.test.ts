/**
 * The private redis-server of standalone mode cannot outlive the server: killed with SIGKILL, the
 * server takes its Redis with it; a Redis left behind on the data folder (by an older server) is taken
 * over cleanly at the next start, keeping its data; a second server on a folder in use is refused.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir } from './helpers/infra.js';
import { login, upload } from './helpers/http.js';
import { startServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^\S+ \S+ Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/, 'x'));
const redisOf = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, 'redis', 'nondivy-embedded.json'), 'utf8')) as { redisPid: number; parentPid: number; port: number };

/** Live redis-server processes working in `dir` (Redis changes into its --dir). */
const redisServersIn = (dir: string) =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'redis-server' && readlinkSync(`/proc/${p}/cwd`) === dir && alive(Number(p));
      } catch {
        return false;
      }
    });

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

const env = (dir: string) => ({ NONDIVY_DATA_DIR: dir, NONDIVY_ADMIN_PASSWORD: 'embedded-admin-pw' });

describe('the embedded redis-server', { skip: process.platform !== 'linux' && 'Linux only' }, () => {
  it('dies with a server killed by SIGKILL, and the next start finds the data', async () => {
    const dir = tempDir();
    try {
      const first = await startServer(env(dir.path));
      const { redisPid } = redisOf(dir.path);
      assert.ok(alive(redisPid));
      const token = await login(first.api, 'admin', 'embedded-admin-pw');
      assert.equal((await upload(first.api, token, Buffer.from('kept across a kill'), 'kept.txt')).status, 201);
      await first.kill();
      const t0 = Date.now();
      assert.ok(await until(() => !alive(redisPid), 5000), 'the embedded redis-server exits with its parent');
      console.log(`embedded redis gone ${Date.now() - t0} ms after SIGKILL of the server`);

      const second = await startServer(env(dir.path));
      try {
        const items = (await (await fetch(`${second.api}/library?q=kept`)).json()) as { items: { title: string }[] };
        assert.equal(items.items.length, 1, 'the append-only file was written before Redis exited');
        assert.deepEqual(redisServersIn(join(dir.path, 'redis')), [String(redisOf(dir.path).redisPid)], 'one redis-server on the folder');
      } finally {
        await second.stop();
      }
      assert.equal(existsSync(join(dir.path, 'redis', 'nondivy-embedded.json')), false, 'a clean stop removes the owner file');
    } finally {
      dir.cleanup();
    }
  });

  it('takes over a Redis left running on the folder by a dead server, and refuses a folder in use', async () => {
    const dir = tempDir();
    const redisDir = join(dir.path, 'redis');
    try {
      // A first start creates the folder and its data; then an orphan: a redis-server on the folder whose
      // owner file names a parent that is gone (what an older server killed with SIGKILL left behind).
      const first = await startServer(env(dir.path));
      const token = await login(first.api, 'admin', 'embedded-admin-pw');
      assert.equal((await upload(first.api, token, Buffer.from('orphaned data'), 'orphan.txt')).status, 201);
      await first.stop();
      const port = await freePort();
      const orphan = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--save', ''], { stdio: 'ignore', detached: true });
      orphan.unref();
      assert.ok(await until(() => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG', 5000));
      const gone = spawnSync('true');
      writeFileSync(join(redisDir, 'nondivy-embedded.json'), JSON.stringify({ redisPid: orphan.pid, parentPid: gone.pid, port }));

      const second = await startServer(env(dir.path));
      try {
        assert.equal(alive(orphan.pid!), false, 'the orphan was stopped');
        assert.ok(second.logs.some((l) => /left behind/.test(l.msg)), 'and that is logged');
        const items = (await (await fetch(`${second.api}/library?q=orphan`)).json()) as { items: unknown[] };
        assert.equal(items.items.length, 1, 'its data is kept');

        // The folder is in use by a live server: a second one is refused with a clear message.
        const refused = spawnSync(process.execPath, ['dist/standalone.mjs'], {
          cwd: ROOT,
          env: { PATH: process.env.PATH, NONDIVY_DATA_DIR: dir.path, NONDIVY_HTTP_PORT: '0', NONDIVY_FTP_PORT: '0', NONDIVY_CATALOG_PORT: '0', NONDIVY_DISCOVERY_PORT: '0' },
          encoding: 'utf8',
          timeout: 20_000,
        });
        assert.notEqual(refused.status, 0);
        assert.match(refused.stdout + refused.stderr, /in use by another Nondivy server/);
        assert.ok(alive(redisOf(dir.path).redisPid), 'the running server keeps its Redis');
        assert.equal((await fetch(`${second.url}/readyz`)).status, 200);
      } finally {
        await second.stop();
        if (alive(orphan.pid!)) process.kill(orphan.pid!, 'SIGKILL');
      }
    } finally {
      dir.cleanup();
    }
  });
});
