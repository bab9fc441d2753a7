import type { Redis } from 'ioredis';
import type { Device, OfferedFile, Transfer, TransferState } from '@nondivy/contracts';
import { AppError, badInput } from '@nondivy/errors';
import { keys } from './keys.js';
import { LuaScript } from './script.js';
import { withRedis } from './redis.js';

const EVENTS_MAXLEN = 10_000;

/** A device as stored: the public fields plus the hash of its token. */
export interface StoredDevice extends Device {
  tokenHash: string;
}

function deviceFromHash(h: Record<string, string>): StoredDevice | null {
  if (!h.id) return null;
  return {
    id: h.id,
    name: h.name ?? '',
    owner: h.owner ?? '',
    since: new Date(Number(h.since)).toISOString(),
    lastSeen: new Date(Number(h.lastSeen)).toISOString(),
    directUrl: h.directUrl || null,
    tokenHash: h.tokenHash ?? '',
  };
}

// KEYS: device, devices, presenceEvents   ARGV: id, name, owner, tokenHash, nowMs, ttlMs, directUrl, atIso, maxlen
const REGISTER = new LuaScript(`
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'owner', ARGV[3], 'tokenHash', ARGV[4], 'since', ARGV[5], 'lastSeen', ARGV[5], 'directUrl', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'type', 'device.online', 'id', ARGV[1], 'name', ARGV[2], 'owner', ARGV[3], 'at', ARGV[8])
return 1
`);

// KEYS: device, devices   ARGV: id, nowMs, ttlMs   → 0 when the device is gone (it must register again)
const HEARTBEAT = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lastSeen', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
`);

// KEYS: device, devices, presenceEvents   ARGV: id, atIso, maxlen, onlyIfExpired(0|1)
// Removes a device and records it going offline. With onlyIfExpired, only when its hash is gone.
const REMOVE = new LuaScript(`
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[4] == '1' and exists then return 0 end
local name = redis.call('HGET', KEYS[1], 'name') or ''
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
redis.call('DEL', KEYS[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 and not exists then return 0 end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'type', 'device.offline', 'id', ARGV[1], 'name', name, 'owner', owner, 'at', ARGV[2])
return 1
`);

/**
 * Device presence in Redis: a device's hash lives for `ttlMs` after its last heartbeat, so a device
 * that goes away without a word disappears on its own; the sorted set of last heartbeats lets the
 * discovery service notice and publish `device.offline`.
 */
export class RedisDeviceStore {
  constructor(
    private readonly redis: Redis,
    readonly ttlMs: number,
  ) {}

  register(device: { id: string; name: string; owner: string; tokenHash: string; directUrl: string | null }): Promise<StoredDevice> {
    const now = Date.now();
    return withRedis(async () => {
      await REGISTER.run(this.redis, 3, keys.device(device.id), keys.devices, keys.presenceEvents,
        device.id, device.name, device.owner, device.tokenHash, String(now), String(this.ttlMs), device.directUrl ?? '', new Date(now).toISOString(), String(EVENTS_MAXLEN));
      return { ...device, since: new Date(now).toISOString(), lastSeen: new Date(now).toISOString() };
    });
  }

  heartbeat(id: string): Promise<boolean> {
    return withRedis(async () => (await HEARTBEAT.run(this.redis, 2, keys.device(id), keys.devices, id, String(Date.now()), String(this.ttlMs))) === 1);
  }

  get(id: string): Promise<StoredDevice | null> {
    return withRedis(async () => deviceFromHash(await this.redis.hgetall(keys.device(id))));
  }

  /** Devices online now (heartbeat within the TTL), most recent first. */
  list(): Promise<StoredDevice[]> {
    return withRedis(async () => {
      const ids = await this.redis.zrevrangebyscore(keys.devices, '+inf', Date.now() - this.ttlMs);
      if (!ids.length) return [];
      const pipe = this.redis.pipeline();
      for (const id of ids) pipe.hgetall(keys.device(id));
      const out: StoredDevice[] = [];
      for (const [err, h] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        const d = deviceFromHash(h as Record<string, string>);
        if (d) out.push(d);
      }
      return out;
    });
  }

  remove(id: string): Promise<boolean> {
    return withRedis(async () => (await REMOVE.run(this.redis, 3, keys.device(id), keys.devices, keys.presenceEvents, id, new Date().toISOString(), String(EVENTS_MAXLEN), '0')) === 1);
  }

  /** Publishes `device.offline` for devices whose presence expired; returns how many. */
  sweep(): Promise<number> {
    return withRedis(async () => {
      const stale = await this.redis.zrangebyscore(keys.devices, '-inf', Date.now() - this.ttlMs, 'LIMIT', 0, 500);
      let n = 0;
      for (const id of stale) {
        n += Number(await REMOVE.run(this.redis, 3, keys.device(id), keys.devices, keys.presenceEvents, id, new Date().toISOString(), String(EVENTS_MAXLEN), '1'));
      }
      return n;
    });
  }
}

/** A transfer as stored: the public record plus the hashes of nothing secret (tokens are per device). */
function transferFromHash(h: Record<string, string>): Transfer | null {
  if (!h.id) return null;
  return {
    id: h.id,
    from: JSON.parse(h.from!) as Transfer['from'],
    to: JSON.parse(h.to!) as Transfer['to'],
    files: JSON.parse(h.files!) as Transfer['files'],
    state: h.state as TransferState,
    createdAt: h.createdAt!,
    expiresAt: h.expiresAt!,
    updatedAt: h.updatedAt!,
    route: (h.route || null) as Transfer['route'],
    directUrl: h.directUrl || null,
    directToken: h.directToken || null,
    reason: h.reason || null,
    text: h.text || null,
    progress: { files: Number(h.doneFiles ?? 0), bytes: Number(h.doneBytes ?? 0) },
  };
}

// KEYS: transfer, transferEvents, transfersExpiring   ARGV: fromStates (comma list), toState, atIso, maxlen, retainMs, then field/value pairs
// Moves a transfer from one of `fromStates` to `toState` (and sets the fields) atomically.
// Returns the old state, or nil when the transfer does not exist, or {err} when it is in another state.
const TRANSITION = new LuaScript(`
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return nil end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == state then allowed = true end end
if not allowed then return redis.error_reply('STATE ' .. state) end
local fields = {'state', ARGV[2], 'updatedAt', ARGV[3]}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[2] ~= 'offered' then redis.call('ZREM', KEYS[3], redis.call('HGET', KEYS[1], 'id')) end
if ARGV[2] == 'rejected' or ARGV[2] == 'cancelled' or ARGV[2] == 'expired' or ARGV[2] == 'completed' or ARGV[2] == 'failed' then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  -- A text message is kept only while the transfer is open.
  redis.call('HDEL', KEYS[1], 'text')
elseif ARGV[2] == 'accepted' then
  -- The bytes may take long to go: the record lives a day from acceptance.
  redis.call('PEXPIRE', KEYS[1], 86400000)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'type', 'transfer.changed', 'id', redis.call('HGET', KEYS[1], 'id'), 'state', ARGV[2],
  'from', cjson.decode(redis.call('HGET', KEYS[1], 'from')).device, 'to', cjson.decode(redis.call('HGET', KEYS[1], 'to')).device, 'at', ARGV[3])
return state
`);

// KEYS: transfer   ARGV: field/value pairs. Never recreates an expired record (it would have no TTL).
const SET_IF_EXISTS = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`);

// KEYS: transfer   ARGV: n, size   → how many files are delivered (each file counted once; 0 when the transfer is gone)
const DELIVERED = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'delivered:' .. ARGV[1], '1') == 1 then
  redis.call('HINCRBY', KEYS[1], 'doneFiles', 1)
  redis.call('HINCRBY', KEYS[1], 'doneBase', ARGV[2])
  redis.call('HSET', KEYS[1], 'doneBytes', redis.call('HGET', KEYS[1], 'doneBase'))
end
return tonumber(redis.call('HGET', KEYS[1], 'doneFiles'))
`);

// KEYS: transfer   ARGV: bytes of the file on its way   Progress within a file: the delivered files' bytes plus these.
const PROGRESS = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'doneBytes', tonumber(redis.call('HGET', KEYS[1], 'doneBase') or '0') + tonumber(ARGV[1]))
return 1
`);

/** A download ticket's binding: one file of one transfer, for one receiving device. */
export interface TransferTicket {
  transfer: string;
  n: number;
  device: string;
}

/** The outcome of a state change that was not allowed: the transfer is in `state` (or already exists). */
export class TransferStateError extends Error {
  constructor(readonly state: TransferState | 'exists' | null) {
    super(state === 'exists' ? 'a transfer with this id exists' : state ? `transfer is ${state}` : 'no such transfer');
  }
}

/** A device's open offers, sent and received (see `keys.deviceOffersSent`): they bound how many a device may have open. */
const pendingKeys = { sent: keys.deviceOffersSent, received: keys.deviceOffersReceived };

/** Counts a pending set after dropping stale entries (ARGV[1]: now ms, ARGV[2]: the transfer key prefix). */
const LIVE_PENDING = `
local function livePending(key, now, prefix)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if redis.call('HGET', prefix .. id, 'state') ~= 'offered' then redis.call('ZREM', key, id) end
  end
  return redis.call('ZCARD', key)
end
`;

// KEYS: pending set   ARGV: nowMs, transfer key prefix
const COUNT_PENDING = new LuaScript(`${LIVE_PENDING}
return livePending(KEYS[1], ARGV[1], ARGV[2])
`);

// KEYS: transfer, transfersExpiring, fromDeviceTransfers, toDeviceTransfers, transferEvents, fromPendingSent, toPendingReceived
// ARGV: fields (JSON flat array), ttlMs, expiresAtMs, id, maxlen, fromDevice, toDevice, atIso, nowMs, transfer key prefix,
//       max pending sent by the sender, max pending received by the receiver (0: no cap)
// Creates a transfer only if no transfer has this id (ids may come from a linked site) and both
// devices are under their caps of open offers: 1 created, 0 id exists, -1 sender full, -2 receiver full.
const CREATE_TRANSFER = new LuaScript(`${LIVE_PENDING}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local maxSent, maxReceived = tonumber(ARGV[11]), tonumber(ARGV[12])
if maxSent > 0 and livePending(KEYS[6], ARGV[9], ARGV[10]) >= maxSent then return -1 end
if maxReceived > 0 and livePending(KEYS[7], ARGV[9], ARGV[10]) >= maxReceived then return -2 end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[1])))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[6], ARGV[2])
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[7], ARGV[2])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'type', 'transfer.changed', 'id', ARGV[4], 'state', 'offered', 'from', ARGV[6], 'to', ARGV[7], 'at', ARGV[8])
return 1
`);

const offerLimit = (who: string, max: number) =>
  new AppError('rate_limited', `${who} already has ${max} open offers waiting for an answer: wait for answers, or withdraw some`, { retryAfter: 30, details: { limit: max } });

/** Caps on open offers (0: none): how many one device may have sent, and have received. */
export interface PendingCaps {
  maxSent: number;
  maxReceived: number;
}

/** One page of a device's transfers, newest first; `nextCursor` continues after its last one. */
export interface TransferPage {
  transfers: Transfer[];
  nextCursor: string | null;
}

/** A page position: the last transfer shown (creation time and id, the listing order). */
const encodeCursor = (t: { createdAt: string; id: string }) => Buffer.from(`${t.createdAt}|${t.id}`).toString('base64url');
function decodeCursor(cursor: string): { createdAt: string; id: string } | null {
  const [createdAt, id, extra] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  return createdAt && id && extra === undefined ? { createdAt, id } : null;
}

/**
 * Device-to-device transfers: offers and their state machine, kept in Redis with a TTL. Finished
 * transfers are kept `retainMs` so both sides can read how it ended; open offers expire at their
 * deadline (the discovery service's sweep marks them expired and tells both sides).
 */
export class RedisTransferStore {
  constructor(
    private readonly redis: Redis,
    readonly retainMs = 3600_000,
  ) {}

  /**
   * Records a new offer. With `caps`, refuses it (OfferLimitError) when the sender or the receiver
   * already has that many open offers, atomically with the creation.
   */
  async create(t: { id: string; from: Transfer['from']; to: Transfer['to']; files: (OfferedFile & { n: number })[]; text?: string; ttlMs: number }, caps: PendingCaps = { maxSent: 0, maxReceived: 0 }): Promise<Transfer> {
    const now = Date.now();
    const record: Transfer = {
      id: t.id,
      from: t.from,
      to: t.to,
      files: t.files,
      state: 'offered',
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + t.ttlMs).toISOString(),
      updatedAt: new Date(now).toISOString(),
      route: null,
      directUrl: null,
      directToken: null,
      reason: null,
      text: t.text ?? null,
      progress: { files: 0, bytes: 0 },
    };
    const fields: Record<string, string> = {
      id: record.id,
      from: JSON.stringify(record.from),
      to: JSON.stringify(record.to),
      files: JSON.stringify(record.files),
      state: record.state,
      createdAt: record.createdAt,
      expiresAt: record.expiresAt,
      updatedAt: record.updatedAt,
    };
    if (t.text !== undefined) fields.text = t.text;
    const created = await withRedis(() =>
      CREATE_TRANSFER.run(this.redis, 7,
        keys.transfer(t.id), keys.transfersExpiring, keys.deviceTransfers(t.from.device), keys.deviceTransfers(t.to.device), keys.transferEvents,
        pendingKeys.sent(t.from.device), pendingKeys.received(t.to.device),
        JSON.stringify(Object.entries(fields).flat()), String(t.ttlMs + this.retainMs), String(now + t.ttlMs), t.id, String(EVENTS_MAXLEN), t.from.device, t.to.device, record.createdAt,
        String(now), keys.transfer(''), String(caps.maxSent), String(caps.maxReceived)),
    );
    if (created === -1) throw offerLimit('The sending device', caps.maxSent);
    if (created === -2) throw offerLimit('The receiving device', caps.maxReceived);
    if (created !== 1) throw new TransferStateError('exists');
    return record;
  }

  get(id: string): Promise<Transfer | null> {
    return withRedis(async () => transferFromHash(await this.redis.hgetall(keys.transfer(id))));
  }

  /** How many open offers a device has sent (or received), stale entries dropped first. */
  pendingCount(deviceId: string, side: 'sent' | 'received'): Promise<number> {
    return withRedis(async () => Number(await COUNT_PENDING.run(this.redis, 1, pendingKeys[side](deviceId), String(Date.now()), keys.transfer(''))));
  }

  /**
   * One page of the transfers a device sends or receives that still exist, newest first (ties by
   * id), optionally only those in `state`. Only the page's records are read whole: the others are
   * ordered by their creation time alone, so a long history costs ids, not records.
   */
  forDevice(deviceId: string, page: { limit: number; cursor?: string; state?: TransferState }): Promise<TransferPage> {
    const after = page.cursor ? decodeCursor(page.cursor) : null;
    if (page.cursor && !after) return Promise.reject(badInput('Not a cursor of this listing: start again without one'));
    return withRedis(async () => {
      const ids = await this.redis.smembers(keys.deviceTransfers(deviceId));
      if (!ids.length) return { transfers: [], nextCursor: null };
      const heads = this.redis.pipeline();
      for (const id of ids) heads.hmget(keys.transfer(id), 'createdAt', 'state');
      const listed: { id: string; createdAt: string }[] = [];
      const gone: string[] = [];
      ((await heads.exec()) ?? []).forEach(([err, v], i) => {
        if (err) throw err;
        const [createdAt, state] = v as [string | null, string | null];
        if (!createdAt) gone.push(ids[i]!);
        else if (!page.state || state === page.state) listed.push({ id: ids[i]!, createdAt });
      });
      if (gone.length) await this.redis.srem(keys.deviceTransfers(deviceId), ...gone);
      const newestFirst = (a: { id: string; createdAt: string }, b: { id: string; createdAt: string }) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id);
      listed.sort(newestFirst);
      const start = after ? listed.findIndex((t) => newestFirst(t, after) > 0) : 0;
      const slice = start < 0 ? [] : listed.slice(start, start + page.limit);
      if (!slice.length) return { transfers: [], nextCursor: null };
      const bodies = this.redis.pipeline();
      for (const t of slice) bodies.hgetall(keys.transfer(t.id));
      const transfers: Transfer[] = [];
      for (const [err, h] of (await bodies.exec()) ?? []) {
        if (err) throw err;
        const t = transferFromHash(h as Record<string, string>);
        if (t) transfers.push(t);
      }
      const more = start + page.limit < listed.length;
      return { transfers, nextCursor: more ? encodeCursor(slice[slice.length - 1]!) : null };
    });
  }

  /** Changes state if the transfer is in one of `from`; throws TransferStateError otherwise. */
  async transition(id: string, from: TransferState[], to: TransferState, fields: Record<string, string> = {}): Promise<Transfer> {
    const flat = Object.entries(fields).flat();
    try {
      const res = await withRedis(() =>
        TRANSITION.run(this.redis, 3, keys.transfer(id), keys.transferEvents, keys.transfersExpiring, from.join(','), to, new Date().toISOString(), String(EVENTS_MAXLEN), String(this.retainMs), ...flat),
      );
      if (res === null) throw new TransferStateError(null);
    } catch (err) {
      const m = /STATE (\w+)/.exec((err as Error)?.message ?? '');
      if (m) throw new TransferStateError(m[1] as TransferState);
      throw err;
    }
    return (await this.get(id))!;
  }

  /** Sets fields of an existing transfer without a state change (e.g. the route the sender chose). */
  async set(id: string, fields: Record<string, string>): Promise<void> {
    await withRedis(() => SET_IF_EXISTS.run(this.redis, 1, keys.transfer(id), ...Object.entries(fields).flat()));
  }

  /** Records file `n` (of `size` bytes) as delivered whole to the receiver; returns how many files are. */
  async delivered(id: string, n: number, size: number): Promise<number> {
    return Number(await withRedis(() => DELIVERED.run(this.redis, 1, keys.transfer(id), String(n), String(size))));
  }

  /** Progress within the file on its way: `bytes` of it delivered so far. */
  async progress(id: string, bytes: number): Promise<void> {
    await withRedis(() => PROGRESS.run(this.redis, 1, keys.transfer(id), String(bytes)));
  }

  /** Keeps a download ticket (by the hash of its secret) for `ttlMs`. */
  async putTicket(secretHash: string, ticket: TransferTicket, ttlMs: number): Promise<void> {
    await withRedis(() => this.redis.set(keys.transferTicket(secretHash), JSON.stringify(ticket), 'PX', ttlMs));
  }

  /** Takes a download ticket: it is gone afterwards, whatever the caller then decides. */
  async takeTicket(secretHash: string): Promise<TransferTicket | null> {
    const raw = await withRedis(() => this.redis.getdel(keys.transferTicket(secretHash)));
    if (!raw) return null;
    const t = JSON.parse(raw) as Partial<TransferTicket>;
    return typeof t.transfer === 'string' && typeof t.n === 'number' && typeof t.device === 'string' ? { transfer: t.transfer, n: t.n, device: t.device } : null;
  }

  /** Marks open offers past their deadline as expired; returns how many. */
  async expireDue(now = Date.now()): Promise<number> {
    const due = await withRedis(() => this.redis.zrangebyscore(keys.transfersExpiring, '-inf', now, 'LIMIT', 0, 500));
    let n = 0;
    for (const id of due) {
      try {
        await this.transition(id, ['offered'], 'expired', { reason: 'The offer expired before it was accepted' });
        n++;
      } catch (err) {
        if (!(err instanceof TransferStateError)) throw err;
        await withRedis(() => this.redis.zrem(keys.transfersExpiring, id));
      }
    }
    return n;
  }
}
