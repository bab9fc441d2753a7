import type { Redis } from 'ioredis';
import type { StoredUpload, UploadResult } from '@nondivy/contracts';
import { keys } from './keys.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';

// KEYS: resumable:<id>, expiring, by:<owner>
// ARGV: id, length, maxCount, maxBytes, expires, fields (JSON array)
// Returns 'created', or the cap that refuses it ('count' | 'bytes') with nothing written.
const CREATE = new LuaScript(`
local owned = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
if #owned / 2 >= tonumber(ARGV[3]) then return 'count' end
local bytes = tonumber(ARGV[2])
for i = 2, #owned, 2 do bytes = bytes + tonumber(owned[i]) end
if bytes > tonumber(ARGV[4]) then return 'bytes' end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[6])))
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 'created'
`);

// KEYS: resumable:<id>, parts, expiring
// ARGV: id, from, offset, hash, token, expires, pieces...
// Returns 1, or 0 (nothing written) when the upload is gone, finished or no longer at `from`.
const CHECKPOINT = new LuaScript(`
local at = redis.call('HMGET', KEYS[1], 'offset', 'result')
if not at[1] or at[2] or at[1] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'offset', ARGV[3], 'hash', ARGV[4], 'token', ARGV[5], 'expires', ARGV[6])
for i = 7, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
return 1
`);

// KEYS: resumable:<id>, parts, expiring, by:<owner>
// ARGV: id, result (JSON), keepMs
const FINISH = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'result', ARGV[2], 'offset', redis.call('HGET', KEYS[1], 'length'))
redis.call('HDEL', KEYS[1], 'hash', 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
`);

// KEYS: resumable:<id>, parts, expiring, wanted
// ARGV: id, owner-key prefix
const REMOVE = new LuaScript(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('ZREM', ARGV[2] .. owner, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`);

// KEYS: lock, wanted. ARGV: holder, ttlMs. Returns 'held', 'wanted' or 'lost'. The wish stays until
// the lock is released (or it expires): a holder still busy ignores it, and yields at a later renewal
// once its client has gone quiet.
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then return 'wanted' end
return 'held'
`);

// KEYS: lock, wanted. ARGV: holder. A wish for the lock is served by its release.
const UNLOCK = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0
`);

// KEYS: lock, wanted. ARGV: ttlMs. Only while the lock is held (a wish never outlives it by much).
const WANT = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1
`);

/** How long a wish for a lock lasts: past it, the asking request has long been answered 423. */
const WANTED_MS = 10_000;

const FIELDS = ['owner', 'length', 'offset', 'metadata', 'input', 'hash', 'token', 'created', 'expires', 'result'] as const;

/**
 * Resumable (tus) uploads in Redis, so that any gateway process can continue any upload: the record
 * (a hash), its durable pieces (a list: s3 part ETags, one pushed per checkpoint rather than a list
 * rewritten each time), each owner's unfinished uploads scored by length (the caps, checked and
 * taken in one script), the expiry schedule the sweeper reads, and a write lock per upload.
 * Structurally the `ResumableUploadStore` of libs/storage.
 */
export class RedisUploadStore {
  constructor(private readonly redis: Redis) {}

  create(record: StoredUpload, limits: { maxCount: number; maxBytes: number }): Promise<'created' | 'count' | 'bytes'> {
    const fields = [
      'id', record.id,
      'owner', record.owner,
      'length', String(record.length),
      'offset', String(record.offset),
      'metadata', record.metadata,
      'input', JSON.stringify(record.input),
      'hash', record.hashState,
      'token', record.staging.token,
      'created', String(record.createdAt),
      'expires', String(record.expiresAt),
    ];
    return withRedis(
      async () =>
        (await CREATE.run(
          this.redis,
          3,
          keys.resumable(record.id),
          keys.resumableExpiring,
          keys.resumableByOwner(record.owner),
          record.id,
          record.length,
          limits.maxCount,
          limits.maxBytes,
          record.expiresAt,
          JSON.stringify(fields),
        )) as 'created' | 'count' | 'bytes',
    );
  }

  get(id: string): Promise<StoredUpload | null> {
    return withRedis(async () => {
      const [values, pieces] = await Promise.all([this.redis.hmget(keys.resumable(id), ...FIELDS), this.redis.lrange(keys.resumableParts(id), 0, -1)]);
      const [owner, length, offset, metadata, input, hash, token, created, expires, result] = values;
      if (owner === null || length === null || offset === null) return null;
      const record: StoredUpload = {
        id,
        owner,
        length: Number(length),
        offset: Number(offset),
        metadata: metadata ?? '',
        input: JSON.parse(input ?? '{}') as StoredUpload['input'],
        hashState: hash ?? '',
        staging: { token: token ?? '', pieces },
        createdAt: Number(created),
        expiresAt: Number(expires),
      };
      if (result) record.finished = JSON.parse(result) as UploadResult;
      return record;
    });
  }

  checkpoint(id: string, c: { from: number; offset: number; hashState: string; token: string; pieces: string[]; expiresAt: number }): Promise<boolean> {
    return withRedis(
      async () =>
        (await CHECKPOINT.run(
          this.redis,
          3,
          keys.resumable(id),
          keys.resumableParts(id),
          keys.resumableExpiring,
          id,
          String(c.from),
          String(c.offset),
          c.hashState,
          c.token,
          c.expiresAt,
          ...c.pieces,
        )) === 1,
    );
  }

  async finish(id: string, result: UploadResult, keepMs: number): Promise<void> {
    await withRedis(async () => {
      const owner = await this.redis.hget(keys.resumable(id), 'owner');
      if (owner === null) return;
      await FINISH.run(this.redis, 4, keys.resumable(id), keys.resumableParts(id), keys.resumableExpiring, keys.resumableByOwner(owner), id, JSON.stringify(result), Math.max(1, Math.floor(keepMs)));
    });
  }

  async remove(id: string): Promise<StoredUpload | null> {
    const record = await this.get(id);
    await withRedis(() =>
      REMOVE.run(this.redis, 4, keys.resumable(id), keys.resumableParts(id), keys.resumableExpiring, keys.resumableWanted(id), id, keys.resumableByOwner('')),
    );
    return record;
  }

  lock(id: string, holder: string, ttlMs: number): Promise<boolean> {
    return withRedis(async () => (await this.redis.set(keys.resumableLock(id), holder, 'PX', ttlMs, 'NX')) === 'OK');
  }

  renewLock(id: string, holder: string, ttlMs: number): Promise<'held' | 'wanted' | 'lost'> {
    return withRedis(async () => (await RENEW.run(this.redis, 2, keys.resumableLock(id), keys.resumableWanted(id), holder, ttlMs)) as 'held' | 'wanted' | 'lost');
  }

  async wantLock(id: string): Promise<void> {
    await withRedis(() => WANT.run(this.redis, 2, keys.resumableLock(id), keys.resumableWanted(id), WANTED_MS));
  }

  async unlock(id: string, holder: string): Promise<void> {
    await withRedis(() => UNLOCK.run(this.redis, 2, keys.resumableLock(id), keys.resumableWanted(id), holder));
  }

  expired(now: number, limit = 100): Promise<string[]> {
    return withRedis(() => this.redis.zrangebyscore(keys.resumableExpiring, '-inf', now, 'LIMIT', 0, limit));
  }
}
