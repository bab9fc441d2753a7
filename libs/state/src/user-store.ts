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

/** Lua: whether an account other than ARGV[1] is an admin (KEYS[2]: the users set; user keys by prefix). */
const OTHER_ADMIN = `
local function otherAdmin(usersKey, name)
  for _, other in ipairs(redis.call('SMEMBERS', usersKey)) do
    if other ~= name and redis.call('HGET', '${keys.user('')}' .. other, 'role') == 'admin' then return true end
  end
  return false
end
`;

// KEYS: user:<name>, users   ARGV: username, role   → 1 set, 0 no such user, -1 it is the last admin
const SET_ROLE = new LuaScript(`${OTHER_ADMIN}
local role = redis.call('HGET', KEYS[1], 'role')
if not role then return 0 end
if role == 'admin' and ARGV[2] ~= 'admin' and not otherAdmin(KEYS[2], ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'role', ARGV[2])
return 1
`);

// KEYS: user:<name>, users, user:<name>:sessions   ARGV: username   → 1 deleted, 0 no such user, -1 it is the last admin
// The account, every session of it and its session index go together: no token of it works afterwards.
const DELETE_USER = new LuaScript(`${OTHER_ADMIN}
local role = redis.call('HGET', KEYS[1], 'role')
if not role then return 0 end
if role == 'admin' and not otherAdmin(KEYS[2], ARGV[1]) then return -1 end
for _, h in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', '${keys.session('')}' .. h)
end
redis.call('DEL', KEYS[3], KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
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

// KEYS: session:<hash>, user:<name>:sessions, user:<name>   ARGV: username, token hash, ttl seconds, password hash checked
// Opens a session only if the account still has the password that was checked: a login that raced a
// password reset or a deletion gets no session (0). Returns the issue time otherwise.
const CREATE_SESSION = new LuaScript(`
if redis.call('HGET', KEYS[3], 'passwordHash') ~= ARGV[4] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. now, 'EX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + ttl * 1000, ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl * 1000)
return now
`);

/** Why an account change was refused. */
export type AccountChange = 'done' | 'no_such_user' | 'last_admin';
const outcome = (n: unknown): AccountChange => (n === 1 ? 'done' : n === -1 ? 'last_admin' : 'no_such_user');

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

  /**
   * Sets a user's role. Refused (`last_admin`) when it would demote the only admin, checked in the
   * same script as the change, so two admins demoting each other at once cannot leave none.
   */
  setRole(username: string, role: Role): Promise<AccountChange> {
    return withRedis(async () => outcome(await SET_ROLE.run(this.redis, 2, keys.user(username), keys.users, username, role)));
  }

  /**
   * Deletes an account with all of its sessions, atomically; refused (`last_admin`) for the only admin.
   * What the user uploaded is not theirs to take away: library items stay.
   */
  delete(username: string): Promise<AccountChange> {
    return withRedis(async () => outcome(await DELETE_USER.run(this.redis, 3, keys.user(username), keys.users, keys.userSessions(username), username)));
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

  /**
   * Opens a session for `username` if the account still has `passwordHash` (the one the login was
   * checked against); false when it was deleted or its password changed meanwhile.
   */
  create(tokenHash: string, username: string, ttlSeconds: number, passwordHash: string): Promise<boolean> {
    return withRedis(async () =>
      (await CREATE_SESSION.run(this.redis, 3, keys.session(tokenHash), keys.userSessions(username), keys.user(username), username, tokenHash, ttlSeconds, passwordHash)) !== 0,
    );
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
