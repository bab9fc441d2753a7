import { AppError } from '@nondivy/errors';

/**
 * An invite code names the inviting site's URL, its id and public key (so the site that uses the
 * code can tell it reached the right site), and a one-time secret. It is one line of URL-safe text
 * (`ndv1.…`) to paste, or to show as a QR code.
 */
export interface Invite {
  url: string;
  siteId: string;
  publicKey: string;
  secret: string;
}

const PREFIX = 'ndv1.';

export function encodeInvite(i: Invite): string {
  return PREFIX + Buffer.from(JSON.stringify({ u: i.url, i: i.siteId, k: i.publicKey, s: i.secret })).toString('base64url');
}

export function decodeInvite(code: string): Invite {
  const bad = () => new AppError('bad_input', 'Not a valid invite code');
  const trimmed = code.trim();
  if (!trimmed.startsWith(PREFIX) || trimmed.length > 2000) throw bad();
  let obj: { u?: unknown; i?: unknown; k?: unknown; s?: unknown };
  try {
    // Stryker disable BlockStatement: the catch below as an empty block leaves `obj` undefined, which the typeof check below refuses with the same error
    obj = JSON.parse(Buffer.from(trimmed.slice(PREFIX.length), 'base64url').toString('utf8')) as typeof obj;
  } catch {
    throw bad();
  }
  // Stryker restore BlockStatement
  // `null` is valid JSON too: reading a field of it would throw a TypeError (a 500, not a refusal).
  // Stryker disable next-line ConditionalExpression: `typeof obj !== 'object'` as false: a JSON string, number or boolean has no string field u, so the next line refuses it alike (the null and whole-condition mutants are killed by the tests)
  if (typeof obj !== 'object' || obj === null) throw bad();
  if (typeof obj.u !== 'string' || typeof obj.i !== 'string' || typeof obj.k !== 'string' || typeof obj.s !== 'string') throw bad();
  let url: URL;
  try {
    url = new URL(obj.u);
  } catch {
    throw bad();
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad();
  if (!/^[A-Za-z0-9_-]{43}$/.test(obj.k) || !/^[A-Za-z0-9_-]{20,100}$/.test(obj.s) || !/^[A-Za-z0-9_-]{8,40}$/.test(obj.i)) throw bad();
  return { url: url.origin, siteId: obj.i, publicKey: obj.k, secret: obj.s };
}
