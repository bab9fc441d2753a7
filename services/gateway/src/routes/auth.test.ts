/**
 * Logins and identities through `app.inject`, over the gateway's real Redis: the shape of a session,
 * the problem documents of a wrong password, a malformed body and a bad token, and who may create
 * accounts.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_PASSWORD, sharedGateway, type TestGateway } from '../test-helper.js';

const PROBLEM = 'application/problem+json; charset=utf-8';

describe('auth routes (inject)', { timeout: 30_000 }, () => {
  let gw: TestGateway;
  before(async () => {
    gw = await sharedGateway();
  });

  it('a login answers a bearer token, its expiry and the user', async () => {
    const before = Date.now();
    const res = await gw.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password: ADMIN_PASSWORD } });
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.deepEqual(Object.keys(body).sort(), ['expiresAt', 'token', 'user']);
    assert.match(body.token, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(body.expiresAt) > before + 3600_000, 'a session of the configured length');
    assert.deepEqual({ ...body.user, createdAt: undefined }, { username: 'admin', role: 'admin', createdAt: undefined });

    const me = await gw.app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${body.token}` } });
    assert.equal(me.statusCode, 200);
    assert.deepEqual(me.json(), body.user);
  });

  it('a wrong password and an unknown user get the same 401 problem', async () => {
    for (const payload of [{ username: 'admin', password: 'not-the-password' }, { username: 'nobody-here', password: 'whatever-it-is' }]) {
      const res = await gw.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload });
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers['content-type'], PROBLEM);
      assert.deepEqual(res.json(), { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'Wrong username or password' });
    }
  });

  it('a malformed login body is a 400 problem naming each bad field', async () => {
    const res = await gw.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', extra: 1 } });
    assert.equal(res.statusCode, 400);
    assert.equal(res.headers['content-type'], PROBLEM);
    const body = res.json();
    assert.equal(body.title, 'Bad Request');
    assert.equal(body.detail, 'Invalid body');
    assert.ok(Array.isArray(body.errors) && body.errors.length > 0, 'a list of errors');
    assert.ok(body.errors.every((e: { path: unknown; message: unknown }) => typeof e.path === 'string' && typeof e.message === 'string'), 'each with a path and a message');

    const notJson = await gw.app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'content-type': 'application/json' }, payload: '{"username":' });
    assert.equal(notJson.statusCode, 400);
    assert.equal(notJson.headers['content-type'], PROBLEM);
  });

  it('/me: a guest is 401; a malformed or unknown token is 401 (never silently a guest)', async () => {
    const cases: [Record<string, string>, string][] = [
      [{}, 'Authentication required'],
      [{ authorization: 'Basic YWRtaW46eA==' }, 'Malformed Authorization header (expected "Bearer <token>")'],
      [{ authorization: `Bearer ${'x'.repeat(43)}` }, 'Invalid or expired token'],
    ];
    for (const [headers, detail] of cases) {
      const res = await gw.app.inject({ method: 'GET', url: '/api/v1/me', headers });
      assert.equal(res.statusCode, 401, JSON.stringify(headers));
      assert.equal(res.headers['content-type'], PROBLEM);
      assert.deepEqual(res.json(), { type: 'about:blank', title: 'Unauthorized', status: 401, detail });
    }
  });

  it('only an admin creates accounts; a member gets 403, a guest 401; logout ends the session', async () => {
    await gw.userToken('member-b');
    // A session of its own: the one `userToken` keeps is shared with the other route tests.
    const member = await gw.login('member-b', 'member-b-password');
    const payload = { username: 'made-by-member', password: 'long-enough-password', role: 'member' };
    const byMember = await gw.app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: `Bearer ${member}` }, payload });
    assert.equal(byMember.statusCode, 403);
    assert.deepEqual(byMember.json(), { type: 'about:blank', title: 'Forbidden', status: 403, detail: 'Admins only' });
    const byGuest = await gw.app.inject({ method: 'POST', url: '/api/v1/users', payload });
    assert.equal(byGuest.statusCode, 401);

    const out = await gw.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { authorization: `Bearer ${member}` } });
    assert.equal(out.statusCode, 204);
    const after = await gw.app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${member}` } });
    assert.equal(after.statusCode, 401);
  });
});
