/**
 * Sessions end when a password changes, by whatever route: a reset of the admin password through
 * NONDIVY_ADMIN_PASSWORD ends every admin token; a user changing their own password keeps only the
 * session they changed it from; sessions issued before sessions were dated end too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAuthService } from '@nondivy/runtime';
import { createRedis, waitForRedis } from '@nondivy/state';
import { createLogger } from '@nondivy/log';
import { bearer, login } from './helpers/http.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { startServer } from './helpers/server.js';

const me = (api: string, token: string) => fetch(`${api}/me`, { headers: bearer(token) }).then((r) => r.status);

describe('sessions and password changes', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.close();
  });

  it('a new NONDIVY_ADMIN_PASSWORD ends every session of the old one; the same password keeps them', async () => {
    const dir = tempDir();
    try {
      const env = { REDIS_URL: redis.url, NONDIVY_DATA_DIR: dir.path, NONDIVY_ADMIN_PASSWORD: 'first-admin-password' };
      const first = await startServer(env);
      const a = await login(first.api, 'admin', 'first-admin-password');
      const b = await login(first.api, 'admin', 'first-admin-password');
      assert.equal(await me(first.api, a), 200);
      await first.stop();

      const same = await startServer(env);
      assert.equal(await me(same.api, a), 200, 'a restart with the same password keeps sessions');
      await same.stop();

      const reset = await startServer({ ...env, NONDIVY_ADMIN_PASSWORD: 'second-admin-password' });
      try {
        assert.equal(await me(reset.api, a), 401, 'the old password’s session is over');
        assert.equal(await me(reset.api, b), 401);
        const c = await login(reset.api, 'admin', 'second-admin-password');
        assert.equal(await me(reset.api, c), 200);
        assert.equal(redis.cli('ZCARD', 'nd:user:admin:sessions'), '1', 'ended sessions are removed, not just refused');
      } finally {
        await reset.stop();
      }
    } finally {
      dir.cleanup();
    }
  });

  it('a user changing their own password keeps only that session; legacy undated sessions end', async () => {
    const log = createLogger('test', 'silent');
    const client = createRedis(redis.url, log, 'test');
    await waitForRedis(client, log);
    try {
      const auth = createAuthService(client, { maxLoginFailures: 10, lockSeconds: 60, sessionTtlSeconds: 600 });
      const name = `u${Date.now()}`;
      await auth.createUser(name, 'old password 1', 'member');
      const kept = await auth.login(name, 'old password 1', '127.0.0.9');
      const other = await auth.login(name, 'old password 1', '127.0.0.9');
      // A session as stored before sessions carried their issue time: just the username.
      const legacyToken = 'legacy-token-0123456789abcdef';
      const { createHash } = await import('node:crypto');
      redis.cli('SET', `nd:session:${createHash('sha256').update(legacyToken).digest('base64url')}`, name, 'EX', '600');
      assert.equal((await auth.authenticate(legacyToken))?.username, name);

      assert.equal(await auth.setPassword(name, 'new password 2', kept.token), true);
      assert.equal((await auth.authenticate(kept.token))?.username, name, 'the session the change came from goes on');
      assert.equal(await auth.authenticate(other.token), null);
      assert.equal(await auth.authenticate(legacyToken), null);
      await assert.rejects(auth.login(name, 'old password 1', '127.0.0.9'));
      assert.equal((await auth.login(name, 'new password 2', '127.0.0.9')).user.username, name);
      assert.equal(await auth.setPassword('nobody-here', 'whatever 123'), false);
    } finally {
      client.disconnect();
    }
  });
});
