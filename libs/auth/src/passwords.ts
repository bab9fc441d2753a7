import { createHmac, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

// scrypt parameters (N=2^15, r=8, p=1): ~32 MiB and ~50 ms per hash — costly to guess offline.
const PARAMS: ScryptOptions = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_LEN = 32;

function derive(password: string, salt: Buffer, params: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, KEY_LEN, params, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a password as `scrypt$N$r$p$salt$key` (base64url parts). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, PARAMS);
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Checks a password against a stored hash in constant time. A malformed hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, key] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(key, 'base64url');
  const actual = await derive(password, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p), maxmem: PARAMS.maxmem });
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** A random password that is easy to type: 4 groups of 5 lowercase letters and digits. */
export function generatePassword(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = randomBytes(20);
  let out = '';
  for (let i = 0; i < 20; i++) {
    if (i > 0 && i % 5 === 0) out += '-';
    out += alphabet[bytes[i]! % alphabet.length];
  }
  return out;
}

/**
 * Passwords this process has verified lately, so that a client that logs in again and again (an
 * FTP client opens a connection per transfer: rclone, lftp and curl log in each time) costs a
 * keyed SHA-256 rather than a scrypt each time (about 50 ms of CPU and 32 MiB of memory), as
 * SFTPGo's password cache does. Only successes are kept, so guessing costs a scrypt per guess as
 * before; an entry is keyed by the stored hash, which a new password or a reset replaces, and
 * holds an HMAC of the password under a key that never leaves this process. Entries expire after
 * `ttlMs`; at most `max` are kept (the oldest go first). Logins of the same password checked at
 * the same moment share one scrypt.
 */
export class VerifiedPasswords {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, { mac: Buffer; until: number }>();
  private readonly pending = new Map<string, Promise<boolean>>();

  constructor(
    private readonly ttlMs = 15 * 60_000,
    private readonly max = 1000,
  ) {}

  private mac(password: string): Buffer {
    return createHmac('sha256', this.key).update(password.normalize('NFKC')).digest();
  }

  async verify(password: string, stored: string): Promise<boolean> {
    const mac = this.mac(password);
    const known = this.entries.get(stored);
    if (known && known.until > Date.now() && timingSafeEqual(known.mac, mac)) return true;
    const id = `${stored}\n${mac.toString('base64')}`;
    let check = this.pending.get(id);
    if (!check) {
      check = verifyPassword(password, stored).finally(() => this.pending.delete(id));
      this.pending.set(id, check);
    }
    const ok = await check;
    if (ok) {
      this.entries.delete(stored);
      this.entries.set(stored, { mac, until: Date.now() + this.ttlMs });
      for (const oldest of this.entries.keys()) {
        if (this.entries.size <= this.max) break;
        this.entries.delete(oldest);
      }
    }
    return ok;
  }
}
