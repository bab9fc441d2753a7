import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/**
 * Requests between linked sites are signed with the sending site's Ed25519 key. The signature covers
 * a canonical text of: the method, the path with its query, the Host, the sending and receiving site
 * ids, a timestamp, a nonce and the SHA-256 of the body. The receiver checks the key it got when the
 * sites were linked, a timestamp window, and that the nonce was not seen before (no replay).
 *
 * Headers: X-Nondivy-Site (sender), X-Nondivy-To (receiver), X-Nondivy-Date (ms since epoch),
 * X-Nondivy-Nonce, X-Nondivy-Digest (`sha-256=<base64>`), X-Nondivy-Signature (base64).
 */
export const SIGNATURE_HEADERS = {
  site: 'x-nondivy-site',
  to: 'x-nondivy-to',
  date: 'x-nondivy-date',
  nonce: 'x-nondivy-nonce',
  digest: 'x-nondivy-digest',
  signature: 'x-nondivy-signature',
} as const;

export interface SignedParts {
  method: string;
  /** Path and query, as sent on the request line. */
  path: string;
  host: string;
  site: string;
  to: string;
  date: string;
  nonce: string;
  digest: string;
}

export function canonical(p: SignedParts): string {
  return ['nondivy-sig-v1', p.method.toUpperCase(), p.path, p.host.toLowerCase(), p.site, p.to, p.date, p.nonce, p.digest].join('\n');
}

export const bodyDigest = (body: Buffer | string) => `sha-256=${createHash('sha256').update(body).digest('base64')}`;
/** The digest of a body known by its SHA-256 in hex (a streamed file offered with its hash). */
export const digestOfSha256 = (hex: string) => `sha-256=${Buffer.from(hex, 'hex').toString('base64')}`;

export interface SiteKeys {
  privateKey: KeyObject;
  /** Raw 32-byte public key, base64url: what linked sites store. */
  publicKey: string;
}

export function generateSiteKeys(): { privatePem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, publicKey: rawPublicKey(publicKey) };
}

export function loadSiteKeys(privatePem: string): SiteKeys {
  const privateKey = createPrivateKey(privatePem);
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) };
}

function rawPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as { x: string };
  return jwk.x;
}

export function publicKeyFromRaw(raw: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
}

export function signParts(keys: SiteKeys, parts: SignedParts): string {
  return sign(null, Buffer.from(canonical(parts)), keys.privateKey).toString('base64');
}

export function verifyParts(publicKeyRaw: string, parts: SignedParts, signature: string): boolean {
  try {
    return verify(null, Buffer.from(canonical(parts)), publicKeyFromRaw(publicKeyRaw), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
