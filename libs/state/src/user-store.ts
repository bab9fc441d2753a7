import type { Redis } from 'ioredis';
import type { Role } from '@nondivy/contracts';
import { keys } from './keys.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';

/** A user account as stored; `passwordHash` never leaves the auth library. */
export interface StoredUser {
  username: string;
  role: Role;
  passwordHash: string;
  createdAt: string;
}

// KEYS: user:<name>, users   ARGV: fields...   Creates only when absent.
const CREATE_USER = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
redis.call('SADD', KEYS[2], redis.call('HGET', KEYS[1], 'username'))
return 1
`);

/** User accounts in Redis. */
export class RedisUserStore {
  constructor(private readonly redis: Redis) {}

  get(username: string): Promise<StoredUser | null> {
    return withRedis(async () => {
      const h = await this.redis.hgetall(keys.user(username));
      if (!h.username) return null;
      return { username: h.username, role: h.role as Role, passwordHash: h.passwordHash ?? '', createdAt: h.createdAt ?? '' };
    });
  }

  /** Creates the user; false when the name is taken. */
  create(user: StoredUser): Promise<boolean> {
    return withRedis(async () => {
      const fields = ['username', user.username, 'role', user.role, 'passwordHash', user.passwordHash, 'createdAt', user.createdAt];
      return (await CREATE_USER.run(this.redis, 2, keys.user(user.username), keys.users, ...fields)) === 1;
    });
  }

  setPassword(username: string, passwordHash: string): Promise<void> {
    return withRedis(async () => {
      await this.redis.hset(keys.user(username), 'passwordHash', passwordHash);
    });
  }

  list(): Promise<StoredUser[]> {
    return withRedis(async () => {
      const names = await this.redis.smembers(keys.users);
      const users = await Promise.all(names.sort().map((n) => this.get(n)));
      return users.filter((u): u is StoredUser => u !== null);
    });
  }
}

/** Login sessions: an opaque token's hash → username, expiring by itself. */
export class RedisSessionStore {
  constructor(private readonly redis: Redis) {}

  create(tokenHash: string, username: string, ttlSeconds: number): Promise<void> {
    return withRedis(async () => {
      await this.redis.set(keys.session(tokenHash), username, 'EX', ttlSeconds);
    });
  }

  find(tokenHash: string): Promise<string | null> {
    return withRedis(() => this.redis.get(keys.session(tokenHash)));
  }

  delete(tokenHash: string): Promise<void> {
    return withRedis(async () => {
      await this.redis.del(keys.session(tokenHash));
    });
  }
}

/**
 * Failed-login counters per client address, with a sliding lock-out window. Shared by every front
 * door (REST, FTP) so that an attacker cannot switch protocols to get more guesses.
 */
export class RedisLoginThrottle {
  constructor(private readonly redis: Redis) {}

  /** Current failures and seconds until the counter resets. */
  status(ip: string): Promise<{ failures: number; resetIn: number }> {
    return withRedis(async () => {
      const [[, count], [, ttl]] = (await this.redis.multi().get(keys.loginFailures(ip)).ttl(keys.loginFailures(ip)).exec()) as [
        [unknown, string | null],
        [unknown, number],
      ];
      return { failures: Number(count ?? 0), resetIn: Math.max(0, ttl) };
    });
  }

  /** Records one failure; the window restarts with each failure. */
  recordFailure(ip: string, windowSeconds: number): Promise<number> {
    return withRedis(async () => {
      const [[, count]] = (await this.redis.multi().incr(keys.loginFailures(ip)).expire(keys.loginFailures(ip), windowSeconds).exec()) as [[unknown, number]];
      return count;
    });
  }

  reset(ip: string): Promise<void> {
    return withRedis(async () => {
      await this.redis.del(keys.loginFailures(ip));
    });
  }
}
