/**
 * Account management over REST, against the standalone server: admins set roles, reset passwords and
 * delete accounts; users change their own password. Every rule that protects an account is checked
 * from the outside: who may call what, which sessions end, that old passwords stop working on REST and
 * FTP alike, that a wrong current password feeds the login throttle, and that the last admin stays.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FTPError } from 'basic-ftp';
import { bearer, curl, login, upload } from './helpers/http.js';
import { ftpClient } from './helpers/ftp.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { startServer, type TestServer } from './helpers/server.js';

/** Failed logins per address before 429: small, so the throttle test is quick. */
const MAX_FAILURES = 3;
const ADMIN_PASSWORD = 'accounts-admin-password';

describe('accounts API', () => {
  let redis: TestRedis;
  let dir: ReturnType<typeof tempDir>;
  let server: TestServer;
  let admin: string;

  /** A JSON request; returns the status and the parsed body (null when empty). */
  const call = async (method: string, path: string, token: string | null, body?: unknown) => {
    const headers: Record<string, string> = token ? bearer(token) : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${server.api}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
  };
  const me = async (token: string) => (await call('GET', '/me', token)).status;
  const loginStatus = async (username: string, password: string) => (await call('POST', '/auth/login', null, { username, password })).status;
  /** The FTP reply to a login: 230 in, 530 refused. */
  const ftpLogin = async (username: string, password: string): Promise<number> => {
    try {
      const client = await ftpClient(server.ftpPort, username, password);
      client.close();
      return 230;
    } catch (err) {
      if (err instanceof FTPError) return err.code;
      throw err;
    }
  };
  let n = 0;
  const createUser = async (role: 'admin' | 'member', password = 'first password 1') => {
    const username = `user${++n}`;
    const res = await call('POST', '/users', admin, { username, password, role });
    assert.equal(res.status, 201);
    return username;
  };

  before(async () => {
    redis = await startRedis();
    dir = tempDir();
    server = await startServer({
      REDIS_URL: redis.url,
      NONDIVY_DATA_DIR: dir.path,
      NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD,
      NONDIVY_LOGIN_MAX_FAILURES: String(MAX_FAILURES),
      NONDIVY_LOGIN_LOCK_SECONDS: '60',
    });
    admin = await login(server.api, 'admin', ADMIN_PASSWORD);
  });
  after(async () => {
    await server?.stop();
    await redis?.close();
    dir?.cleanup();
  });

  it('only admins manage accounts: members get 403, guests 401; unknown accounts 404; bad bodies 400', async () => {
    const member = await createUser('member');
    const token = await login(server.api, member, 'first password 1');
    const other = await createUser('member');

    for (const [method, body] of [['PATCH', { role: 'admin' }], ['DELETE', undefined]] as const) {
      assert.equal((await call(method, `/users/${other}`, token, body)).status, 403, `${method} by a member`);
      assert.equal((await call(method, `/users/${member}`, token, body)).status, 403, `${method} of oneself by a member`);
      assert.equal((await call(method, `/users/${other}`, null, body)).status, 401, `${method} by a guest`);
      const missing = await call(method, '/users/nobody-here', admin, body);
      assert.equal(missing.status, 404);
      assert.match(missing.type, /application\/problem\+json/);
    }
    assert.equal((await call('GET', '/me', token)).body?.role, 'member', 'the member was not promoted');
    assert.equal((await call('PUT', '/me/password', null, { current: 'x', password: 'new password 2' })).status, 401);

    assert.equal((await call('PATCH', `/users/${other}`, admin, {})).status, 400, 'nothing to change');
    assert.equal((await call('PATCH', `/users/${other}`, admin, { role: 'owner' })).status, 400);
    assert.equal((await call('PATCH', `/users/${other}`, admin, { password: 'short' })).status, 400, 'the password rules of account creation');
    assert.equal((await call('PATCH', `/users/${other}`, admin, { password: 'long enough 1', extra: 1 })).status, 400);
    const short = await call('PUT', '/me/password', token, { current: 'first password 1', password: 'short' });
    assert.equal(short.status, 400);
    assert.match(short.type, /application\/problem\+json/);
    assert.equal(await loginStatus(member, 'first password 1'), 200, 'a refused change changed nothing');
    for (const reserved of ['guest', 'anonymous']) {
      assert.equal((await call('POST', '/users', admin, { username: reserved, password: 'long enough 1' })).status, 400, `${reserved} is reserved`);
    }
  });

  it('an admin sets the role and resets the password: every session of the account ends, the admin’s goes on', async () => {
    const member = await createUser('member');
    const a = await login(server.api, member, 'first password 1');
    const b = await login(server.api, member, 'first password 1');

    const promoted = await call('PATCH', `/users/${member}`, admin, { role: 'admin' });
    assert.equal(promoted.status, 200);
    assert.deepEqual(Object.keys(promoted.body!).sort(), ['createdAt', 'role', 'username']);
    assert.equal(promoted.body!.role, 'admin');
    assert.equal((await call('GET', '/me', a)).body?.role, 'admin', 'a role change applies to live sessions at once');
    assert.equal((await call('PATCH', `/users/${member}`, admin, { role: 'member' })).body?.role, 'member');

    const reset = await call('PATCH', `/users/${member}`, admin, { password: 'reset password 2' });
    assert.equal(reset.status, 200);
    assert.equal(reset.body!.username, member);
    assert.equal(await me(a), 401);
    assert.equal(await me(b), 401);
    assert.equal(await me(admin), 200);
    assert.equal(redis.cli('ZCARD', `nd:user:${member}:sessions`), '0', 'ended sessions are removed');
    assert.equal(await loginStatus(member, 'first password 1'), 401);
    assert.equal(await loginStatus(member, 'reset password 2'), 200);
  });

  it('changing one’s own password keeps this session, ends the others, and the old password fails on REST and FTP', async () => {
    const member = await createUser('member', 'own password 1');
    assert.equal(await ftpLogin(member, 'own password 1'), 230);
    const mine = await login(server.api, member, 'own password 1');
    const elsewhere = await login(server.api, member, 'own password 1');

    const res = await call('PUT', '/me/password', mine, { current: 'own password 1', password: 'own password 2' });
    assert.equal(res.status, 204);
    assert.equal(res.body, null);
    assert.equal(await me(mine), 200, 'the caller’s session goes on');
    assert.equal(await me(elsewhere), 401, 'the other session ended');
    assert.equal(await loginStatus(member, 'own password 1'), 401);
    assert.equal(await ftpLogin(member, 'own password 1'), 530);
    assert.equal(await ftpLogin(member, 'own password 2'), 230);
    assert.equal(await loginStatus(member, 'own password 2'), 200);
    assert.equal(redis.cli('ZCARD', `nd:user:${member}:sessions`), '2', 'the kept session and the new one');
  });

  it('a wrong current password is 403 and counts as a failed login of that address, until it is locked out (429)', async () => {
    const member = await createUser('member', 'guarded password 1');
    const token = await login(server.api, member, 'guarded password 1');
    // From an address of its own, so the lock-out is this test's alone; a stolen token is used from anywhere.
    const from = '127.0.0.5';
    const put = (current: string) =>
      curl(['--interface', from, '-X', 'PUT', '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json',
        '--data', JSON.stringify({ current, password: 'attacker password 9' }), `${server.api}/me/password`]);
    for (let i = 1; i < MAX_FAILURES; i++) {
      const wrong = put(`guess ${i}`);
      assert.equal(wrong.status, 403, `guess ${i}`);
      assert.match(wrong.headers, /content-type: application\/problem\+json/i);
    }
    assert.equal(put(`guess ${MAX_FAILURES}`).status, 429, 'the last allowed failure locks the address');
    const locked = put('guarded password 1');
    assert.equal(locked.status, 429, 'even the right password is refused while locked');
    assert.match(locked.headers, /retry-after: \d+/i);
    const loginThere = curl(['--interface', from, '-H', 'content-type: application/json',
      '--data', JSON.stringify({ username: member, password: 'guarded password 1' }), `${server.api}/auth/login`]);
    assert.equal(loginThere.status, 429, 'the same counter as logins');

    assert.equal(await me(token), 200, 'the session itself is not ended by wrong guesses');
    assert.equal(await loginStatus(member, 'guarded password 1'), 200, 'the password did not change; other addresses are not locked');
  });

  it('the last admin can be neither demoted nor deleted (409), even by two admins at once', async () => {
    const self = await call('PATCH', '/users/admin', admin, { role: 'member' });
    assert.equal(self.status, 409);
    assert.match(self.type, /application\/problem\+json/);
    assert.equal((await call('DELETE', '/users/admin', admin)).status, 409);
    assert.equal((await call('GET', '/me', admin)).body?.role, 'admin');

    // Two admins demoting each other at the same moment: exactly one wins, one admin is left.
    const other = await createUser('admin');
    const otherToken = await login(server.api, other, 'first password 1');
    const [first, second] = await Promise.all([
      call('PATCH', `/users/${other}`, admin, { role: 'member' }),
      call('PATCH', '/users/admin', otherToken, { role: 'member' }),
    ]);
    // The loser is refused either by the last-admin rule (409) or, when the winner's change landed before
    // its request was authorised, because it is no longer an admin (403).
    const [won, lost] = first.status === 200 ? [first, second] : [second, first];
    assert.equal(won.status, 200);
    assert.ok([403, 409].includes(lost.status), `the other answer is 403 or 409, got ${lost.status}`);
    const users = (await call('GET', '/users', first.status === 200 ? admin : otherToken)).body!.users as { username: string; role: string }[];
    assert.equal(users.filter((u) => u.role === 'admin').length, 1);
    if (second.status === 200) assert.equal((await call('PATCH', '/users/admin', otherToken, { role: 'admin' })).status, 200);
    else assert.equal((await call('PATCH', `/users/${other}`, admin, { role: 'admin' })).status, 200);

    // With another admin, an admin may leave: their own token stops at once.
    assert.equal((await call('DELETE', `/users/${other}`, otherToken)).status, 204);
    assert.equal(await me(otherToken), 401);
    assert.equal((await call('DELETE', '/users/admin', admin)).status, 409, 'the last admin again');
  });

  it('a deleted account’s tokens, logins (REST and FTP) and devices stop at once; its uploads stay in the library', async () => {
    const member = await createUser('member', 'doomed password 1');
    assert.equal(await ftpLogin(member, 'doomed password 1'), 230);
    const token = await login(server.api, member, 'doomed password 1');
    const second = await login(server.api, member, 'doomed password 1');
    const bytes = Buffer.from('kept after the uploader is gone\n');
    const up = await upload(server.api, token, bytes, 'kept.txt', { title: 'Kept' });
    assert.equal(up.status, 201);
    const item = (await up.json()) as { id: string; uploadedBy: string };
    const reg = await call('POST', '/devices', token, { name: 'doomed-phone' });
    assert.equal(reg.status, 201);
    const device = reg.body as { device: { id: string }; token: string };
    const heartbeat = () => fetch(`${server.api}/devices/${device.device.id}/heartbeat`, { method: 'PUT', headers: { 'x-device-token': device.token } }).then((r) => r.status);
    assert.equal(await heartbeat(), 204);

    const del = await call('DELETE', `/users/${member}`, admin);
    assert.equal(del.status, 204);
    assert.equal(del.body, null);
    assert.equal(await me(token), 401);
    assert.equal(await me(second), 401);
    assert.equal(await heartbeat(), 401, 'the account’s device token stops too');
    const devices = (await call('GET', '/devices', admin)).body!.devices as { id: string }[];
    assert.ok(!devices.some((d) => d.id === device.device.id), 'its device is offline');
    assert.equal(await loginStatus(member, 'doomed password 1'), 401);
    assert.equal(await ftpLogin(member, 'doomed password 1'), 530);
    assert.equal(await loginStatus('admin', ADMIN_PASSWORD), 200, 'resets this address’s failure count');

    assert.equal(redis.cli('EXISTS', `nd:user:${member}`, `nd:user:${member}:sessions`), '0', 'account and session index gone');
    assert.equal(redis.cli('SISMEMBER', 'nd:users', member), '0');
    const listed = (await call('GET', '/users', admin)).body!.users as { username: string }[];
    assert.ok(!listed.some((u) => u.username === member));

    const kept = await fetch(`${server.api}/library/${item.id}/content`);
    assert.equal(kept.status, 200);
    assert.deepEqual(Buffer.from(await kept.arrayBuffer()), bytes);
    assert.equal((await call('GET', `/library/${item.id}`, null)).body?.uploadedBy, member);

    assert.equal((await call('DELETE', `/users/${member}`, admin)).status, 404, 'already gone');
    // A new account of the same name is a new account: nothing of the old one lets anyone in.
    assert.equal((await call('POST', '/users', admin, { username: member, password: 'fresh password 3', role: 'member' })).status, 201);
    assert.equal(await me(token), 401);
    assert.equal(await heartbeat(), 401);
  });

  it('the OpenAPI document describes the account routes with their schemas', async () => {
    const doc = (await (await fetch(`${server.url}/docs/json`)).json()) as { paths: Record<string, Record<string, { requestBody?: unknown; description?: string }>> };
    const user = doc.paths['/api/v1/users/{username}']!;
    assert.ok(user.patch?.requestBody, 'PATCH has a body schema');
    assert.ok(user.delete, 'DELETE is documented');
    assert.match(user.delete!.description ?? '', /stays in the library/);
    assert.ok(doc.paths['/api/v1/me/password']?.put?.requestBody);
  });
});
