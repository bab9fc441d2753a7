import { ChangePasswordRequest, CreateUserRequest, LoginRequest, LoginResponse, UpdateUserRequest, User, UsernameParams } from '@nondivy/contracts';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { GatewayDeps } from '../deps.js';
import { requireAdmin, requireUser } from '../plugins/authn.js';

/** The bearer token of a request (authn has already checked it). */
const bearerToken = (req: FastifyRequest) => /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? '')?.[1];

/** Login, the caller's identity, and account management (admins). */
export const authRoutes: FastifyPluginAsyncZod<{ deps: GatewayDeps }> = async (app, { deps }) => {
  app.post(
    '/auth/login',
    { schema: { tags: ['auth'], summary: 'Log in', body: LoginRequest, response: { 200: LoginResponse } } },
    async (req) => deps.auth.login(req.body.username, req.body.password, req.ip),
  );

  app.post('/auth/logout', { schema: { tags: ['auth'], summary: 'End this session' } }, async (req, reply) => {
    requireUser(req);
    const token = bearerToken(req);
    if (token) await deps.auth.logout(token);
    return reply.code(204).send();
  });

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
      await deps.auth.changeOwnPassword(user.username, req.body.current, req.body.password, req.ip, bearerToken(req)!);
      req.log.info({ username: user.username }, 'password changed');
      return reply.code(204).send();
    },
  );
};
