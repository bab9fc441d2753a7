import { forbidden } from '@nondivy/errors';
import type { FastifyRequest } from 'fastify';

/**
 * The web app's session: the same session token as a Bearer login, kept in a cookie that scripts
 * cannot read (HttpOnly) and that other sites' pages never make the browser send (SameSite=Strict).
 * No Secure flag: the LAN is plain http. Path=/ so that downloads and media links carry it too.
 */
export const SESSION_COOKIE = 'nondivy_session';

/** The header the web app adds to every unsafe request: other origins cannot add it without a CORS preflight, which the gateway never grants. */
export const CSRF_HEADER = 'x-nondivy-csrf';

const TOKEN = /^[A-Za-z0-9_-]{1,200}$/;

/** The session token from the Cookie header, or null when there is none or it is not token-shaped. */
export function sessionCookieOf(header: string | undefined): string | null {
  if (!header || header.length > 8192) return null;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    const value = pair.slice(eq + 1).trim();
    return TOKEN.test(value) ? value : null;
  }
  return null;
}

/** Set-Cookie for a new session lasting until `expiresAt`. */
export function sessionCookie(token: string, expiresAt: string): string {
  const seconds = Math.max(0, Math.floor((Date.parse(expiresAt) - Date.now()) / 1000));
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${seconds}`;
}

/** Set-Cookie that makes the browser forget the session. */
export const CLEAR_SESSION_COOKIE = `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;

/** Methods that change something: only these need the CSRF checks. */
export const isUnsafeMethod = (method: string) => !['GET', 'HEAD', 'OPTIONS'].includes(method);

/**
 * CSRF defence for requests a cookie authenticates (and for cookie logins): the request must come
 * from a page of this very origin — `Sec-Fetch-Site: same-origin` where the browser sends fetch
 * metadata (secure contexts), else an `Origin` equal to this request's own — and carry the
 * X-Nondivy-CSRF header. Throws 403 otherwise. Bearer-token clients never reach this.
 */
export function requireSameOrigin(req: FastifyRequest): void {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  const own = `${req.protocol}://${req.host}`;
  const sameOrigin = site !== undefined ? site === 'same-origin' : origin === own;
  if (!sameOrigin) {
    throw forbidden('Cross-site request refused: a cookie session only acts for pages of this site');
  }
  if (req.headers[CSRF_HEADER] !== '1') {
    throw forbidden('Request refused: a cookie session needs the X-Nondivy-CSRF: 1 header');
  }
}
