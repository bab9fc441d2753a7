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
  /** Sessions issued before this time (ms) are over: the password changed then. */
  sessionsValidFrom?: number;
}

// KEYS: user:<name>, users   ARGV: fields...   Creates only when absent.
const CREATE_USER = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
redis.call('SADD', KEYS[2], redis.call('HGET', KEYS[1], 'username'))
return 1
`);

// KEYS: user:<name>, user:<name>:sessions   ARGV: passwordHash, token hash of the session to keep ('' for none)
// Sets the password and ends the user's sessions but the one kept. `sessionsValidFrom` (Redis clock, ms) also
// ends sessions that the sorted set does not know (issued before it existed): they carry no issue time.
const SET_PASSWORD = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'passwordHash', ARGV[1], 'sessionsValidFrom', now)
local keep = ARGV[2]
for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if h ~= keep then
    redis.call('DEL', '${keys.session('')}' .. h)
    redis.call('ZREM', KEYS[2], h)
  end
end
if keep ~= '' then
  local k = '${keys.session('')}' .. keep
  local ttl = redis.call('PTTL', k)
  if ttl > 0 then
    local user = string.match(redis.call('GET', k), '^[^\\n]*')
    redis.call('SET', k, user .. '\\n' .. now, 'PX', ttl)
  end
end
return 1
`);

// KEYS: session:<hash>, user:<name>:sessions   ARGV: username, token hash, ttl seconds
const CREATE_SESSION = new LuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. now, 'EX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + ttl * 1000, ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl * 1000)
return now
`);

/** User accounts in Redis. */
export class RedisUserStore {
  constructor(private readonly redis: Redis) {}

  get(username: string): Promise<StoredUser | null> {
    return withRedis(async () => {
      const h = await this.redis.hgetall(keys.user(username));
      if (!h.username) return null;
      const user: StoredUser = { username: h.username, role: h.role as Role, passwordHash: h.passwordHash ?? '', createdAt: h.createdAt ?? '' };
      if (h.sessionsValidFrom) user.sessionsValidFrom = Number(h.sessionsValidFrom);
      return user;
    });
  }

  /** Creates the user; false when the name is taken. */
  create(user: StoredUser): Promise<boolean> {
    return withRedis(async () => {
      const fields = ['username', user.username, 'role', user.role, 'passwordHash', user.passwordHash, 'createdAt', user.createdAt];
      return (await CREATE_USER.run(this.redis, 2, keys.user(user.username), keys.users, ...fields)) === 1;
    });
  }

  /**
   * Sets a new password and ends every session of the user except `keepTokenHash` (the session of a
   * user who changed their own password). False when the user does not exist.
   */
  setPassword(username: string, passwordHash: string, keepTokenHash = ''): Promise<boolean> {
    return withRedis(async () => (await SET_PASSWORD.run(this.redis, 2, keys.user(username), keys.userSessions(username), passwordHash, keepTokenHash)) === 1);
  }

  list(): Promise<StoredUser[]> {
    return withRedis(async () => {
      const names = await this.redis.smembers(keys.users);
      const users = await Promise.all(names.sort().map((n) => this.get(n)));
      return users.filter((u): u is StoredUser => u !== null);
    });
  }
}

/** A session as stored: whose it is and when it was issued (ms; 0 for a session older than this field). */
export interface StoredSession {
  username: string;
  issuedAt: number;
}

/**
 * Login sessions: an opaque token's hash → username and issue time, expiring by itself, and indexed
 * per user so that a password change can end them.
 */
export class RedisSessionStore {
  constructor(private readonly redis: Redis) {}

  create(tokenHash: string, username: string, ttlSeconds: number): Promise<void> {
    return withRedis(async () => {
      await CREATE_SESSION.run(this.redis, 2, keys.session(tokenHash), keys.userSessions(username), username, tokenHash, ttlSeconds);
    });
  }

  find(tokenHash: string): Promise<StoredSession | null> {
    return withRedis(async () => {
      const value = await this.redis.get(keys.session(tokenHash));
      if (value === null) return null;
      const nl = value.indexOf('\n');
      return nl < 0 ? { username: value, issuedAt: 0 } : { username: value.slice(0, nl), issuedAt: Number(value.slice(nl + 1)) || 0 };
    });
  }

  delete(tokenHash: string): Promise<void> {
    return withRedis(async () => {
      const value = await this.redis.get(keys.session(tokenHash));
      const nl = value?.indexOf('\n') ?? -1;
      const multi = this.redis.multi().del(keys.session(tokenHash));
      if (value !== null && value !== undefined) multi.zrem(keys.userSessions(nl < 0 ? value : value.slice(0, nl)), tokenHash);
      await multi.exec();
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
