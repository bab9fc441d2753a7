import type { AuthService } from '@nondivy/auth';
import type { User } from '@nondivy/contracts';
import { AppError, forbidden, unauthorized } from '@nondivy/errors';
import type { Actor } from '@nondivy/storage';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CLEAR_SESSION_COOKIE, isUnsafeMethod, requireSameOrigin, sessionCookieOf } from '../web/session-cookie.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The logged-in user, or null for a guest. */
    user: User | null;
    /** The session token this request was authenticated with (Bearer header or the web app's cookie), or null. */
    sessionToken: string | null;
    /** How the session came: an Authorization header, the web app's cookie, or none (a guest). */
    sessionVia: 'bearer' | 'cookie' | null;
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

/** The cookie login (routes/auth.ts). */
const COOKIE_LOGIN_PATH = '/api/v1/auth/session';

/**
 * Resolves `Authorization: Bearer <token>` into `request.user`. No header means a guest; a header
 * with a bad or expired token is a 401 (never silently a guest), so clients notice expired logins.
 *
 * Without that header, the web app's session cookie (web/session-cookie.ts) counts the same, with
 * two differences: an unsafe method (POST, PUT, PATCH, DELETE) sent with the cookie must pass the
 * CSRF checks (403), and a cookie whose session has ended is cleared — a guest for reads, a 401 for
 * changes (the person thinks they are logged in; acting as a guest would surprise them).
 */
export const authn = fp(
  async (app: FastifyInstance, opts: { auth: AuthService }) => {
    app.decorateRequest('user', null);
    app.decorateRequest('sessionToken', null);
    app.decorateRequest('sessionVia', null);
    app.addHook('onRequest', async (req, reply) => {
      const header = req.headers.authorization;
      if (header) {
        const m = /^Bearer\s+([A-Za-z0-9_-]+)\s*$/i.exec(header);
        if (!m) throw new AppError('unauthorized', 'Malformed Authorization header (expected "Bearer <token>")');
        const user = await opts.auth.authenticate(m[1]!);
        if (!user) throw new AppError('unauthorized', 'Invalid or expired token');
        req.user = user;
        req.sessionToken = m[1]!;
        req.sessionVia = 'bearer';
        return;
      }
      const token = sessionCookieOf(req.headers.cookie);
      if (!token) return;
      const unsafe = isUnsafeMethod(req.method);
      if (unsafe) requireSameOrigin(req);
      const user = await opts.auth.authenticate(token);
      if (!user) {
        reply.header('set-cookie', CLEAR_SESSION_COOKIE);
        // (Logging in again is the way out, so the login itself goes on as a guest.)
        if (unsafe && !req.url.startsWith(COOKIE_LOGIN_PATH)) throw new AppError('unauthorized', 'Your session has ended: log in again');
        return;
      }
      req.user = user;
      req.sessionToken = token;
      req.sessionVia = 'cookie';
    });
  },
  { name: 'nondivy-authn', fastify: '5.x' },
);
