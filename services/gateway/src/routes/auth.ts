import { CreateUserRequest, LoginRequest, LoginResponse, User } from '@nondivy/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { GatewayDeps } from '../deps.js';
import { requireAdmin, requireUser } from '../plugins/authn.js';

/** Login, the caller's identity, and account management (admins). */
export const authRoutes: FastifyPluginAsyncZod<{ deps: GatewayDeps }> = async (app, { deps }) => {
  app.post(
    '/auth/login',
    { schema: { tags: ['auth'], summary: 'Log in', body: LoginRequest, response: { 200: LoginResponse } } },
    async (req) => deps.auth.login(req.body.username, req.body.password, req.ip),
  );

  app.post('/auth/logout', { schema: { tags: ['auth'], summary: 'End this session' } }, async (req, reply) => {
    requireUser(req);
    const token = /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? '')?.[1];
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
};
