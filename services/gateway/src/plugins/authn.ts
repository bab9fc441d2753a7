import type { AuthService } from '@nondivy/auth';
import type { User } from '@nondivy/contracts';
import { AppError, forbidden, unauthorized } from '@nondivy/errors';
import type { Actor } from '@nondivy/storage';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyRequest {
    /** The logged-in user, or null for a guest. */
    user: User | null;
  }
}

/** The library's view of who is acting. */
export const actorOf = (req: FastifyRequest): Actor | null => (req.user ? { username: req.user.username, role: req.user.role } : null);

/** Throws 401 for guests. */
export function requireUser(req: FastifyRequest): User {
  if (!req.user) throw unauthorized();
  return req.user;
}

/** Throws 401 for guests and 403 for members. */
export function requireAdmin(req: FastifyRequest): User {
  const user = requireUser(req);
  if (user.role !== 'admin') throw forbidden('Admins only');
  return user;
}

/**
 * Resolves `Authorization: Bearer <token>` into `request.user`. No header means a guest; a header
 * with a bad or expired token is a 401 (never silently a guest), so clients notice expired logins.
 */
export const authn = fp(
  async (app: FastifyInstance, opts: { auth: AuthService }) => {
    app.decorateRequest('user', null);
    app.addHook('onRequest', async (req) => {
      const header = req.headers.authorization;
      if (!header) return;
      const m = /^Bearer\s+([A-Za-z0-9_-]+)\s*$/i.exec(header);
      if (!m) throw new AppError('unauthorized', 'Malformed Authorization header (expected "Bearer <token>")');
      const user = await opts.auth.authenticate(m[1]!);
      if (!user) throw new AppError('unauthorized', 'Invalid or expired token');
      req.user = user;
    });
  },
  { name: 'nondivy-authn', fastify: '5.x' },
);
