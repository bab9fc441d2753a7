/** Configuration: one clear message naming every bad variable; secrets from files. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadCatalogConfig, loadDiscoveryConfig, loadGatewayConfig } from '@nondivy/config';
import { login } from './helpers/http.js';
import { freePort, freePortRange, startRedis, tempDir } from './helpers/infra.js';
import { listeningSockets } from './helpers/listening-sockets.js';
import { startServer } from './helpers/server.js';
import { stopChild } from './helpers/stop-child.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('configuration', () => {
  it('stops start-up with one message naming every bad variable', () => {
    const res = spawnSync(process.execPath, ['dist/standalone.mjs'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        NONDIVY_HTTP_PORT: 'eighty',
        NONDIVY_BLOB_DRIVER: 's3',
        NONDIVY_MAX_UPLOAD_BYTES: 'lots',
        NONDIVY_GUEST_UPLOAD: 'maybe',
        REDIS_URL: 'http://nope',
        NONDIVY_ADMIN_PASSWORD: 'short',
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(res.status, 2);
    for (const name of ['NONDIVY_HTTP_PORT', 'S3_ENDPOINT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY', 'NONDIVY_MAX_UPLOAD_BYTES', 'NONDIVY_GUEST_UPLOAD', 'REDIS_URL', 'NONDIVY_ADMIN_PASSWORD']) {
      assert.match(res.stderr, new RegExp(`^  - ${name}: `, 'm'), `names ${name}`);
    }
    assert.doesNotMatch(res.stderr, /short/, 'secret values are not echoed');
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
  });

  it('reads secrets from NAME_FILE, parses sizes and flags, and refuses NAME with NAME_FILE', () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, 'admin-password');
      writeFileSync(file, 'from-a-secret-file\n');
      const config = loadGatewayConfig({ NONDIVY_ADMIN_PASSWORD_FILE: file, NONDIVY_MAX_UPLOAD_BYTES: '2GiB', NONDIVY_GUEST_UPLOAD: 'yes' });
      assert.equal(config.auth.adminPassword, 'from-a-secret-file');
      assert.equal(config.library.maxUploadBytes, 2 * 1024 ** 3);
      assert.equal(config.library.guestUpload, true);
      assert.equal(config.blobs.driver, 'fs');
      assert.throws(
        () => loadGatewayConfig({ NONDIVY_ADMIN_PASSWORD_FILE: file, NONDIVY_ADMIN_PASSWORD: 'x'.repeat(10) }),
        (e: unknown) => e instanceof ConfigError && /both set/.test(e.message),
      );
      assert.throws(() => loadGatewayConfig({ S3_SECRET_KEY_FILE: join(dir.path, 'missing') }), (e: unknown) => e instanceof ConfigError && /cannot read/.test(e.message));
    } finally {
      dir.cleanup();
    }
  });

  it('explains what to install when there is no Redis at all', () => {
    const dir = tempDir();
    try {
      const res = spawnSync(process.execPath, ['dist/standalone.mjs'], {
        cwd: ROOT,
        env: { PATH: '/nonexistent', NONDIVY_DATA_DIR: dir.path, NONDIVY_HTTP_PORT: '0' },
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(res.status, 3);
      assert.match(res.stdout, /redis-server` is not installed/);
      assert.match(res.stdout, /REDIS_URL/);
    } finally {
      dir.cleanup();
    }
  });

  it('prints a one-time admin password on the first start only, and NONDIVY_ADMIN_PASSWORD resets it', async () => {
    const redis = await startRedis();
    const dir = tempDir();
    try {
      const env = { REDIS_URL: redis.url, NONDIVY_DATA_DIR: dir.path };
      const first = await startServer(env);
      const line = first.logs.find((l) => typeof l.oneTimePassword === 'string');
      assert.ok(line, 'the generated password is logged once');
      assert.equal(line.level, 40);
      assert.match(first.rawOutput(), /NONDIVY_ADMIN_PASSWORD/);
      assert.equal(typeof (await login(first.api, 'admin', line.oneTimePassword as string)), 'string');
      await first.stop();

      const second = await startServer(env);
      assert.equal(second.logs.some((l) => 'oneTimePassword' in l), false, 'not shown again');
      assert.equal(typeof (await login(second.api, 'admin', line.oneTimePassword as string)), 'string');
      await second.stop();

      const third = await startServer({ ...env, NONDIVY_ADMIN_PASSWORD: 'a-new-admin-password' });
      assert.equal(typeof (await login(third.api, 'admin', 'a-new-admin-password')), 'string');
      await third.stop();
    } finally {
      await redis.close();
      dir.cleanup();
    }
  });

  it('the internal HTTP ports (catalog, discovery) default to loopback; the LAN-facing ones are set apart', () => {
    assert.equal(loadCatalogConfig({}).http.host, '127.0.0.1');
    assert.equal(loadDiscoveryConfig({}).http.host, '127.0.0.1');
    assert.equal(loadCatalogConfig({ NONDIVY_CATALOG_HOST: '0.0.0.0' }).http.host, '0.0.0.0', 'Compose opens the catalog to its private network');
    assert.equal(loadGatewayConfig({}).http.host, '0.0.0.0', 'the gateway is the front door');
  });

  it('NONDIVY_ANNOUNCE_INTERFACES: a comma list of interface names; empty means the LAN interfaces', () => {
    assert.equal(loadDiscoveryConfig({}).announce.interfaces, undefined);
    assert.equal(loadDiscoveryConfig({ NONDIVY_ANNOUNCE_INTERFACES: '' }).announce.interfaces, undefined);
    assert.deepEqual(loadDiscoveryConfig({ NONDIVY_ANNOUNCE_INTERFACES: ' eth0, wlan0 ,br-lan' }).announce.interfaces, ['eth0', 'wlan0', 'br-lan']);
    for (const bad of [',', 'eth0;reboot', 'eth 0', 'a-name-longer-than-15']) {
      assert.throws(() => loadDiscoveryConfig({ NONDIVY_ANNOUNCE_INTERFACES: bad }), (err: unknown) => err instanceof ConfigError && /NONDIVY_ANNOUNCE_INTERFACES/.test(err.message), bad);
    }
  });

  it('standalone without host settings: catalog and discovery listen on 127.0.0.1 only', async () => {
    const redis = await startRedis();
    const dir = tempDir();
    const [httpPort, ftpPort, pasvRange] = [await freePort(), await freePort(), await freePortRange(4)];
    // No NONDIVY_CATALOG_HOST / NONDIVY_DISCOVERY_HOST: their defaults are under test. The front
    // doors are kept on loopback too (tests stay off the machine's network).
    const child = spawn(process.execPath, ['dist/standalone.mjs'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        REDIS_URL: redis.url,
        NONDIVY_DATA_DIR: dir.path,
        NONDIVY_HTTP_HOST: '127.0.0.1',
        NONDIVY_HTTP_PORT: String(httpPort),
        NONDIVY_FTP_HOST: '127.0.0.1',
        NONDIVY_FTP_PORT: String(ftpPort),
        NONDIVY_FTP_PASV_RANGE: pasvRange,
        NONDIVY_CATALOG_PORT: '0',
        NONDIVY_DISCOVERY_PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready within 30 s:\n${output}`)), 30_000);
        child.stdout!.on('data', (d: Buffer) => {
          output += d;
          if (/is ready/.test(output)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.stderr!.on('data', (d: Buffer) => (output += d));
        child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
      });
      const sockets = listeningSockets(child.pid!);
      const internal = sockets.filter((s) => s.port !== httpPort && s.port !== ftpPort);
      assert.equal(internal.length, 2, `the catalog's and discovery's ports: ${JSON.stringify(sockets)}`);
      for (const s of sockets) assert.equal(s.address, '127.0.0.1', `port ${s.port} is bound to ${s.address}`);
    } finally {
      await stopChild(child);
      await redis.close();
      dir.cleanup();
    }
  });
});
