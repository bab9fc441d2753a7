import { createHash, randomBytes } from 'node:crypto';
import type { Role, User } from '@nondivy/contracts';
import { AppError, conflict, forbidden, notFound, unauthorized } from '@nondivy/errors';
import type { RedisLoginThrottle, RedisSessionStore, RedisUserStore, StoredUser } from '@nondivy/state';
import { generatePassword, hashPassword, verifyPassword, VerifiedPasswords } from './passwords.js';

export interface AuthOptions {
  users: RedisUserStore;
  sessions: RedisSessionStore;
  throttle: RedisLoginThrottle;
  sessionTtlSeconds: number;
  /** Failed logins per client address before it is refused for `lockSeconds`. */
  maxFailures: number;
  lockSeconds: number;
  /** Delay added to each failed login, growing with the failure count (ms). */
  failureDelayMs?: (failures: number) => number;
}

export interface Session {
  token: string;
  expiresAt: string;
  user: User;
}

const tokenHash = (token: string) => createHash('sha256').update(token).digest('base64url');
const publicUser = (u: StoredUser): User => ({ username: u.username, role: u.role, createdAt: u.createdAt });

/** Shared by every AuthService of the process (a standalone server runs the gateway's and the FTP service's). */
const verified = new VerifiedPasswords();

const defaultDelay = (failures: number) => Math.min(250 * 2 ** Math.min(failures - 1, 4), 4000);

/**
 * The hash an unknown user's password is checked against (so that names cannot be probed by timing):
 * one per process, made when first needed — not at a known user's first login, which would pay
 * a second scrypt for nothing (in a standalone server, the FTP service's first login did).
 */
let dummyHash: Promise<string> | null = null;

/**
 * Accounts, passwords and sessions, shared by every front door. Logins are throttled per client
 * address: each failure is answered more slowly, and past `maxFailures` the address is refused
 * (`rate_limited`) until the window passes. Session tokens are random; only their hash is stored.
 */
export class AuthService {
  constructor(private readonly options: AuthOptions) {}

  /**
   * Makes sure an admin exists. With `password`, the `admin` account gets that password (created or
   * reset), so operators can recover access through configuration. Without it, a first start creates
   * `admin` with a random password and returns it, for the caller to show once.
   */
  async bootstrapAdmin(password?: string): Promise<{ created: boolean; generatedPassword?: string }> {
    const existing = await this.options.users.get('admin');
    if (existing) {
      if (password && !(await verifyPassword(password, existing.passwordHash))) {
        // Recovering access through configuration also ends every session of the old password.
        await this.setPassword('admin', password);
      }
      return { created: false };
    }
    const generated = password ? undefined : generatePassword();
    const created = await this.options.users.create({
      username: 'admin',
      role: 'admin',
      passwordHash: await hashPassword(password ?? generated!),
      createdAt: new Date().toISOString(),
    });
    return created ? { created: true, generatedPassword: generated } : { created: false };
  }

  /** Checks a password for `ip`, applying the throttle; returns the user or throws. */
  async verifyLogin(username: string, password: string, ip: string): Promise<User> {
    return publicUser(await this.checkPassword(username, password, ip));
  }

  /**
   * The throttled password check behind every front door: refused (`rate_limited`) while `ip` is
   * locked out, and each wrong password counts against `ip`. Returns the account as stored, so a
   * session can be tied to the password that was checked.
   */
  private async checkPassword(username: string, password: string, ip: string): Promise<StoredUser> {
    const { throttle } = this.options;
    const status = await throttle.status(ip);
    if (status.failures >= this.options.maxFailures) {
      throw new AppError('rate_limited', 'Too many failed logins; try again later', { retryAfter: Math.max(1, status.resetIn) });
    }
    const user = await this.options.users.get(username.trim().toLowerCase());
    // Unknown users cost the same time as wrong passwords, so names cannot be probed by timing.
    const ok = user ? await verified.verify(password, user.passwordHash) : await verifyPassword(password, await (dummyHash ??= hashPassword(randomBytes(16).toString('hex'))));
    if (!user || !ok) {
      const failures = await throttle.recordFailure(ip, this.options.lockSeconds);
      await new Promise((r) => setTimeout(r, (this.options.failureDelayMs ?? defaultDelay)(failures)));
      if (failures >= this.options.maxFailures) {
        throw new AppError('rate_limited', 'Too many failed logins; try again later', { retryAfter: this.options.lockSeconds });
      }
      throw new AppError('unauthorized', 'Wrong username or password');
    }
    if (status.failures > 0) await throttle.reset(ip);
    return user;
  }

  /**
   * Logs in and opens a session. The session is only opened if the account still has the password
   * just checked, so a login racing a reset or a deletion gets no token.
   */
  async login(username: string, password: string, ip: string): Promise<Session> {
    const user = await this.checkPassword(username, password, ip);
    const token = randomBytes(32).toString('base64url');
    if (!(await this.options.sessions.create(tokenHash(token), user.username, this.options.sessionTtlSeconds, user.passwordHash))) {
      throw unauthorized('Wrong username or password');
    }
    return { token, user: publicUser(user), expiresAt: new Date(Date.now() + this.options.sessionTtlSeconds * 1000).toISOString() };
  }

  async logout(token: string): Promise<void> {
    await this.options.sessions.delete(tokenHash(token));
  }

  /** The user a bearer token belongs to, or null when it is unknown or expired. */
  async authenticate(token: string): Promise<User | null> {
    if (token.length < 20 || token.length > 200) return null;
    const session = await this.options.sessions.find(tokenHash(token));
    if (!session) return null;
    const user = await this.options.users.get(session.username);
    // A session issued before the user's last password change is over, wherever it was changed.
    if (!user || session.issuedAt < (user.sessionsValidFrom ?? 0)) return null;
    return publicUser(user);
  }

  /**
   * Sets a user's password and ends all of their sessions, except the caller's own (`keepToken`) when
   * users change their own password. False when there is no such user.
   */
  async setPassword(username: string, password: string, keepToken?: string): Promise<boolean> {
    return this.options.users.setPassword(username, await hashPassword(password), keepToken ? tokenHash(keepToken) : '');
  }

  /**
   * A logged-in user changes their own password. The current one is checked like a login from `ip`
   * (throttled, and a wrong one counts as a failed login there), so a stolen session token gives no
   * unlimited guesses; it is answered `forbidden`, not `unauthorized`, because the session itself is
   * fine. The session `keepToken` goes on; every other session of the user ends.
   */
  async changeOwnPassword(username: string, current: string, password: string, ip: string, keepToken: string): Promise<void> {
    try {
      await this.checkPassword(username, current, ip);
    } catch (err) {
      if (err instanceof AppError && err.kind === 'unauthorized') throw forbidden('The current password is wrong');
      throw err;
    }
    if (!(await this.setPassword(username, password, keepToken))) throw notFound('No such user');
  }

  /**
   * An admin changes an account: its role and/or its password. A new password ends all of the
   * account's sessions. The role is changed first, so a refused demotion (`conflict`: it is the last
   * admin) changes nothing.
   */
  async updateUser(username: string, change: { role?: Role; password?: string }): Promise<User> {
    const passwordHash = change.password === undefined ? undefined : await hashPassword(change.password);
    if (change.role !== undefined) this.check(await this.options.users.setRole(username, change.role));
    if (passwordHash !== undefined && !(await this.options.users.setPassword(username, passwordHash))) throw notFound('No such user');
    const user = await this.options.users.get(username);
    if (!user) throw notFound('No such user');
    return publicUser(user);
  }

  /**
   * Deletes an account and ends its sessions at once (REST tokens and FTP logins fail from then on).
   * The last admin cannot be deleted (`conflict`).
   */
  async deleteUser(username: string): Promise<void> {
    this.check(await this.options.users.delete(username));
  }

  private check(outcome: 'done' | 'no_such_user' | 'last_admin'): void {
    if (outcome === 'no_such_user') throw notFound('No such user');
    if (outcome === 'last_admin') throw conflict('This is the last admin: make another admin first');
  }

  async createUser(username: string, password: string, role: Role): Promise<User> {
    const user: StoredUser = { username, role, passwordHash: await hashPassword(password), createdAt: new Date().toISOString() };
    if (!(await this.options.users.create(user))) throw conflict('That username is taken');
    return publicUser(user);
  }

  async listUsers(): Promise<User[]> {
    return (await this.options.users.list()).map(publicUser);
  }
}
