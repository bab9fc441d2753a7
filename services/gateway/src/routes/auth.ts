import { ChangePasswordRequest, CreateUserRequest, LoginRequest, LoginResponse, SessionResponse, SessionState, UpdateUserRequest, User, UsernameParams } from '@nondivy/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { GatewayDeps } from '../deps.js';
import { requireAdmin, requireUser } from '../plugins/authn.js';
import { CLEAR_SESSION_COOKIE, requireSameOrigin, sessionCookie } from '../web/session-cookie.js';

/** Login, the caller's identity, and account management (admins). */
export const authRoutes: FastifyPluginAsyncZod<{ deps: GatewayDeps }> = async (app, { deps }) => {
  app.post(
    '/auth/login',
    { schema: { tags: ['auth'], summary: 'Log in', body: LoginRequest, response: { 200: LoginResponse } } },
    async (req) => deps.auth.login(req.body.username, req.body.password, req.ip),
  );

  app.post(
    '/auth/session',
    {
      schema: {
        tags: ['auth'],
        summary: 'Log in with a cookie session (the web app)',
        description:
          'Like /auth/login, but the session token is set as an HttpOnly, SameSite=Strict cookie (`nondivy_session`, Path=/) that scripts cannot read, ' +
          'and the body holds only the user and the expiry. Requests the cookie authenticates act as that user; unsafe ones (POST, PUT, PATCH, DELETE) — and this login itself — ' +
          'must come from a page of this origin (`Origin` equal to it, or `Sec-Fetch-Site: same-origin`) and carry `X-Nondivy-CSRF: 1`, else 403. ' +
          'POST /auth/logout ends it and clears the cookie; a password change ends it like any other session.',
        body: LoginRequest,
        response: { 200: SessionResponse },
        security: [],
      },
    },
    async (req, reply) => {
      // Login CSRF: another site must not log a visitor's browser into an account of its choosing.
      requireSameOrigin(req);
      const session = await deps.auth.login(req.body.username, req.body.password, req.ip);
      reply.header('set-cookie', sessionCookie(session.token, session.expiresAt)).header('cache-control', 'no-store');
      return { expiresAt: session.expiresAt, user: session.user };
    },
  );

  app.get(
    '/auth/session',
    { schema: { tags: ['auth'], summary: 'Who is logged in: the user, or null for a guest (200 either way; the web app asks at start)', response: { 200: SessionState } } },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return { user: req.user };
    },
  );

  app.post(
    '/auth/logout',
    { schema: { tags: ['auth'], summary: 'End this session (a Bearer token, or the web app\'s cookie session, whose cookie is cleared)' } },
    async (req, reply) => {
      requireUser(req);
      if (req.sessionToken) await deps.auth.logout(req.sessionToken);
      if (req.sessionVia === 'cookie') reply.header('set-cookie', CLEAR_SESSION_COOKIE);
      return reply.code(204).send();
    },
  );

  app.get('/me', { schema: { tags: ['auth'], summary: 'Who am I', response: { 200: User } } }, async (req) => requireUser(req));

  app.post(
    '/users',
    { schema: { tags: ['auth'], summary: 'Create a member or admin (admins)', body: CreateUserRequest, response: { 201: User } } },
    async (req, reply) => {
      requireAdmin(req);
      const user = await deps.auth.createUser(req.body.username, req.body.password, req.body.role);
      req.log.info({ username: user.username, role: user.role }, 'user created');
      return reply.code(201).send(user);
    },
  );

  app.get('/users', { schema: { tags: ['auth'], summary: 'List accounts (admins)', response: { 200: z.object({ users: z.array(User) }) } } }, async (req) => {
    requireAdmin(req);
    return { users: await deps.auth.listUsers() };
  });

  app.patch(
    '/users/:username',
    {
      schema: {
        tags: ['auth'],
        summary: 'Set an account\'s role and/or reset its password (admins)',
        description: 'A password reset ends every session of the account, the caller\'s too if it is their own. 404: no such account; 409: it would demote the last admin.',
        params: UsernameParams,
        body: UpdateUserRequest,
        response: { 200: User },
      },
    },
    async (req) => {
      const admin = requireAdmin(req);
      const user = await deps.auth.updateUser(req.params.username, req.body);
      req.log.info({ username: user.username, role: user.role, passwordReset: req.body.password !== undefined, by: admin.username }, 'user updated');
      return user;
    },
  );

  app.delete(
    '/users/:username',
    {
      schema: {
        tags: ['auth'],
        summary: 'Delete an account (admins)',
        description:
          'Ends the account\'s sessions at once (its tokens answer 401, its REST and FTP logins fail) and takes its devices offline. ' +
          'What it uploaded stays in the library. 204: deleted; 404: no such account; 409: it is the last admin.',
        params: UsernameParams,
      },
    },
    async (req, reply) => {
      const admin = requireAdmin(req);
      await deps.auth.deleteUser(req.params.username);
      // Device tokens are separate from sessions: the account's devices go offline with it.
      const owned = (await deps.devices.list()).filter((d) => d.owner === req.params.username);
      for (const device of owned) await deps.sharing.leave(device);
      req.log.info({ username: req.params.username, devices: owned.length, by: admin.username }, 'user deleted');
      return reply.code(204).send();
    },
  );

  app.put(
    '/me/password',
    {
      schema: {
        tags: ['auth'],
        summary: 'Change one\'s own password',
        description: '204: changed. This session goes on; every other session of the account ends. 403: the current password is wrong (counted as a failed login from this address; 429 once locked out).',
        body: ChangePasswordRequest,
      },
    },
    async (req, reply) => {
      const user = requireUser(req);
      await deps.auth.changeOwnPassword(user.username, req.body.current, req.body.password, req.ip, req.sessionToken!);
      req.log.info({ username: user.username }, 'password changed');
      return reply.code(204).send();
    },
  );
};
