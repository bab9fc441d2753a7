import type { Redis } from 'ioredis';
import type { StoredUpload, UploadResult } from '@nondivy/contracts';
import { keys } from './keys.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';

// KEYS: resumable:<id>, expiring, by:<owner>, at:<owner>
// ARGV: id, counted bytes (the length, or 0 while deferred), maxCount, maxBytes, expires, fields (JSON array), place ('' for none)
// Returns 'created', the cap that refuses it ('count' | 'bytes'), or 'exists' (the owner has an
// unfinished upload at that place), with nothing written.
const CREATE = new LuaScript(`
if ARGV[7] ~= '' then
  local other = redis.call('HGET', KEYS[4], ARGV[7])
  if other and redis.call('EXISTS', ARGV[8] .. other) == 1 then return 'exists' end
end
local owned = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
if #owned / 2 >= tonumber(ARGV[3]) then return 'count' end
local bytes = tonumber(ARGV[2])
for i = 2, #owned, 2 do bytes = bytes + tonumber(owned[i]) end
if bytes > tonumber(ARGV[4]) then return 'bytes' end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[6])))
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[4], ARGV[7], ARGV[1]) end
return 'created'
`);

// KEYS: resumable:<id>, parts, expiring, by:<owner>
// ARGV: id, from, offset, hash, token, expires, maxBytes ('' when the length is known), pieces...
// Returns 1; 0 (nothing written) when the upload is gone, finished or no longer at `from`; -1
// (nothing written) when a deferred-length upload's durable bytes would bring its owner's
// unfinished uploads over maxBytes (they count at their durable offset, see CREATE).
const CHECKPOINT = new LuaScript(`
local at = redis.call('HMGET', KEYS[1], 'offset', 'result')
if not at[1] or at[2] or at[1] ~= ARGV[2] then return 0 end
if ARGV[7] ~= '' then
  local owned = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
  local bytes = tonumber(ARGV[3])
  for i = 1, #owned, 2 do
    if owned[i] ~= ARGV[1] then bytes = bytes + tonumber(owned[i + 1]) end
  end
  if bytes > tonumber(ARGV[7]) then return -1 end
  redis.call('ZADD', KEYS[4], 'XX', ARGV[3], ARGV[1])
end
redis.call('HSET', KEYS[1], 'offset', ARGV[3], 'hash', ARGV[4], 'token', ARGV[5], 'expires', ARGV[6])
for i = 8, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
return 1
`);

// KEYS: resumable:<id>, parts, expiring, by:<owner>, at:<owner>
// ARGV: id, result (JSON), keepMs, length ('' : as recorded)
const FINISH = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'length', ARGV[4]) end
redis.call('HSET', KEYS[1], 'result', ARGV[2], 'offset', redis.call('HGET', KEYS[1], 'length'))
local place = redis.call('HGET', KEYS[1], 'place')
if place and redis.call('HGET', KEYS[5], place) == ARGV[1] then redis.call('HDEL', KEYS[5], place) end
redis.call('HDEL', KEYS[1], 'hash', 'token', 'defer')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
`);

// KEYS: resumable:<id>, parts, expiring, wanted
// ARGV: id, owner-key prefix, place-key prefix
const REMOVE = new LuaScript(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('ZREM', ARGV[2] .. owner, ARGV[1]) end
local place = redis.call('HGET', KEYS[1], 'place')
if owner and place and redis.call('HGET', ARGV[3] .. owner, place) == ARGV[1] then redis.call('HDEL', ARGV[3] .. owner, place) end
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

const FIELDS = ['owner', 'length', 'offset', 'metadata', 'input', 'hash', 'token', 'created', 'expires', 'result', 'place', 'defer'] as const;

/**
 * Resumable (tus) uploads in Redis, so that any gateway process can continue any upload: the record
 * (a hash), its durable pieces (a list: s3 part ETags, one pushed per checkpoint rather than a list
 * rewritten each time), each owner's unfinished uploads scored by length (the caps, checked and
 * taken in one script), the expiry schedule the sweeper reads, a write lock per upload, and each
 * owner's uploads named by path (FTP: at most one unfinished upload per owner and place).
 * Structurally the `ResumableUploadStore` of libs/storage.
 */
export class RedisUploadStore {
  constructor(private readonly redis: Redis) {}

  create(record: StoredUpload, limits: { maxCount: number; maxBytes: number }): Promise<'created' | 'count' | 'bytes' | 'exists'> {
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
      ...(record.place ? ['place', record.place] : []),
      ...(record.lengthDeferred ? ['defer', '1'] : []),
    ];
    return withRedis(
      async () =>
        (await CREATE.run(
          this.redis,
          4,
          keys.resumable(record.id),
          keys.resumableExpiring,
          keys.resumableByOwner(record.owner),
          keys.resumableAt(record.owner),
          record.id,
          record.lengthDeferred ? record.offset : record.length,
          limits.maxCount,
          limits.maxBytes,
          record.expiresAt,
          JSON.stringify(fields),
          record.place ?? '',
          keys.resumable(''),
        )) as 'created' | 'count' | 'bytes' | 'exists',
    );
  }

  get(id: string): Promise<StoredUpload | null> {
    return withRedis(async () => {
      const [values, pieces] = await Promise.all([this.redis.hmget(keys.resumable(id), ...FIELDS), this.redis.lrange(keys.resumableParts(id), 0, -1)]);
      const [owner, length, offset, metadata, input, hash, token, created, expires, result, place, defer] = values;
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
      if (place) record.place = place;
      if (defer) record.lengthDeferred = true;
      return record;
    });
  }

  checkpoint(
    id: string,
    c: { from: number; offset: number; hashState: string; token: string; pieces: string[]; expiresAt: number; counted?: { owner: string; maxBytes: number } },
  ): Promise<boolean | 'bytes'> {
    return withRedis(async () => {
      const done = await CHECKPOINT.run(
        this.redis,
        4,
        keys.resumable(id),
        keys.resumableParts(id),
        keys.resumableExpiring,
        keys.resumableByOwner(c.counted?.owner ?? ''),
        id,
        String(c.from),
        String(c.offset),
        c.hashState,
        c.token,
        c.expiresAt,
        c.counted ? String(c.counted.maxBytes) : '',
        ...c.pieces,
      );
      return done === -1 ? 'bytes' : done === 1;
    });
  }

  async finish(id: string, result: UploadResult, keepMs: number, length?: number): Promise<void> {
    await withRedis(async () => {
      const owner = await this.redis.hget(keys.resumable(id), 'owner');
      if (owner === null) return;
      await FINISH.run(
        this.redis,
        5,
        keys.resumable(id),
        keys.resumableParts(id),
        keys.resumableExpiring,
        keys.resumableByOwner(owner),
        keys.resumableAt(owner),
        id,
        JSON.stringify(result),
        Math.max(1, Math.floor(keepMs)),
        length === undefined ? '' : String(length),
      );
    });
  }

  /** The id of `owner`'s unfinished upload at `place` (see `StoredUpload.place`), or null. */
  idAt(owner: string, place: string): Promise<string | null> {
    return withRedis(() => this.redis.hget(keys.resumableAt(owner), place));
  }

  async remove(id: string): Promise<StoredUpload | null> {
    const record = await this.get(id);
    await withRedis(() =>
      REMOVE.run(this.redis, 4, keys.resumable(id), keys.resumableParts(id), keys.resumableExpiring, keys.resumableWanted(id), id, keys.resumableByOwner(''), keys.resumableAt('')),
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
