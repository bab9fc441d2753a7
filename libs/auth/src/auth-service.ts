import { createHash, randomBytes } from 'node:crypto';
import type { Role, User } from '@nondivy/contracts';
import { AppError, conflict } from '@nondivy/errors';
import type { RedisLoginThrottle, RedisSessionStore, RedisUserStore, StoredUser } from '@nondivy/state';
import { generatePassword, hashPassword, verifyPassword } from './passwords.js';

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

const defaultDelay = (failures: number) => Math.min(250 * 2 ** Math.min(failures - 1, 4), 4000);

/**
 * Accounts, passwords and sessions, shared by every front door. Logins are throttled per client
 * address: each failure is answered more slowly, and past `maxFailures` the address is refused
 * (`rate_limited`) until the window passes. Session tokens are random; only their hash is stored.
 */
export class AuthService {
  private dummyHash: Promise<string> | null = null;

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
    const { throttle } = this.options;
    const status = await throttle.status(ip);
    if (status.failures >= this.options.maxFailures) {
      throw new AppError('rate_limited', 'Too many failed logins; try again later', { retryAfter: Math.max(1, status.resetIn) });
    }
    const user = await this.options.users.get(username.trim().toLowerCase());
    // Unknown users cost the same time as wrong passwords, so names cannot be probed by timing.
    this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    const ok = await verifyPassword(password, user?.passwordHash ?? (await this.dummyHash));
    if (!user || !ok) {
      const failures = await throttle.recordFailure(ip, this.options.lockSeconds);
      await new Promise((r) => setTimeout(r, (this.options.failureDelayMs ?? defaultDelay)(failures)));
      if (failures >= this.options.maxFailures) {
        throw new AppError('rate_limited', 'Too many failed logins; try again later', { retryAfter: this.options.lockSeconds });
      }
      throw new AppError('unauthorized', 'Wrong username or password');
    }
    if (status.failures > 0) await throttle.reset(ip);
    return publicUser(user);
  }

  /** Logs in and opens a session. */
  async login(username: string, password: string, ip: string): Promise<Session> {
    const user = await this.verifyLogin(username, password, ip);
    const token = randomBytes(32).toString('base64url');
    await this.options.sessions.create(tokenHash(token), user.username, this.options.sessionTtlSeconds);
    return { token, user, expiresAt: new Date(Date.now() + this.options.sessionTtlSeconds * 1000).toISOString() };
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

  async createUser(username: string, password: string, role: Role): Promise<User> {
    const user: StoredUser = { username, role, passwordHash: await hashPassword(password), createdAt: new Date().toISOString() };
    if (!(await this.options.users.create(user))) throw conflict('That username is taken');
    return publicUser(user);
  }

  async listUsers(): Promise<User[]> {
    return (await this.options.users.list()).map(publicUser);
  }
}
