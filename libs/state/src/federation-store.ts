import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { keys } from './keys.js';
import { withRedis } from './redis.js';
import { SiteIdentityStore } from './site-identity-store.js';

/** A linked site as stored. */
export interface StoredLink {
  siteId: string;
  name: string;
  url: string;
  publicKey: string;
  createdAt: string;
  state: 'online' | 'unreachable';
  lastContactAt: string | null;
  unreachableSince: string | null;
  latencyMs: number | null;
}

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('base64url');

function linkFromHash(h: Record<string, string>): StoredLink | null {
  if (!h.siteId) return null;
  return {
    siteId: h.siteId,
    name: h.name ?? '',
    url: h.url ?? '',
    publicKey: h.publicKey ?? '',
    createdAt: h.createdAt ?? new Date(0).toISOString(),
    state: h.state === 'unreachable' ? 'unreachable' : 'online',
    lastContactAt: h.lastContactAt || null,
    unreachableSince: h.unreachableSince || null,
    latencyMs: h.latencyMs ? Number(h.latencyMs) : null,
  };
}

/**
 * Federation state: this site's identity (id and Ed25519 key, made once), invites (one use, with a
 * TTL), linked sites, and the nonces linked sites already used (kept for the replay window).
 */
export class RedisFederationStore {
  constructor(private readonly redis: Redis) {}

  /** This site's id and private key (PEM), made on first use (see SiteIdentityStore); `make` creates a key pair. */
  identity(make: () => { privatePem: string }): Promise<{ siteId: string; privatePem: string }> {
    return new SiteIdentityStore(this.redis).getOrCreateWithKey(make);
  }

  createInvite(secret: string, ttlMs: number, info: Record<string, string>): Promise<void> {
    return withRedis(async () => {
      await this.redis.set(keys.fedInvite(hashSecret(secret)), JSON.stringify(info), 'PX', ttlMs);
    });
  }

  /** Uses an invite: true once, for an existing unexpired invite; false afterwards. */
  consumeInvite(secret: string): Promise<boolean> {
    return withRedis(async () => (await this.redis.getdel(keys.fedInvite(hashSecret(secret)))) !== null);
  }

  saveLink(link: StoredLink): Promise<void> {
    return withRedis(async () => {
      await this.redis
        .multi()
        .hset(keys.fedLink(link.siteId), {
          siteId: link.siteId,
          name: link.name,
          url: link.url,
          publicKey: link.publicKey,
          createdAt: link.createdAt,
          state: link.state,
          lastContactAt: link.lastContactAt ?? '',
          unreachableSince: link.unreachableSince ?? '',
          latencyMs: link.latencyMs === null ? '' : String(link.latencyMs),
        })
        .sadd(keys.fedLinks, link.siteId)
        .exec();
    });
  }

  getLink(siteId: string): Promise<StoredLink | null> {
    return withRedis(async () => linkFromHash(await this.redis.hgetall(keys.fedLink(siteId))));
  }

  links(): Promise<StoredLink[]> {
    return withRedis(async () => {
      const ids = await this.redis.smembers(keys.fedLinks);
      if (!ids.length) return [];
      const pipe = this.redis.pipeline();
      for (const id of ids) pipe.hgetall(keys.fedLink(id));
      const out: StoredLink[] = [];
      for (const [err, h] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        const l = linkFromHash(h as Record<string, string>);
        if (l) out.push(l);
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  removeLink(siteId: string): Promise<boolean> {
    return withRedis(async () => {
      const [[, n]] = (await this.redis.multi().del(keys.fedLink(siteId)).srem(keys.fedLinks, siteId).exec()) as [[unknown, number], unknown];
      return n === 1;
    });
  }

  /** Records how the last contact with a linked site went. */
  markContact(siteId: string, ok: boolean, latencyMs?: number): Promise<void> {
    return withRedis(async () => {
      const key = keys.fedLink(siteId);
      if (!(await this.redis.exists(key))) return;
      const now = new Date().toISOString();
      if (ok) await this.redis.hset(key, { state: 'online', lastContactAt: now, unreachableSince: '', latencyMs: String(Math.round(latencyMs ?? 0)) });
      else {
        await this.redis.hsetnx(key, 'unreachableSince', now);
        if (!(await this.redis.hget(key, 'unreachableSince'))) await this.redis.hset(key, 'unreachableSince', now);
        await this.redis.hset(key, 'state', 'unreachable');
      }
    });
  }

  /** True the first time a site uses a nonce within `ttlMs`; false for a replay. */
  useNonce(siteId: string, nonce: string, ttlMs: number): Promise<boolean> {
    return withRedis(async () => (await this.redis.set(keys.fedNonce(siteId, nonce), '1', 'PX', ttlMs, 'NX')) === 'OK');
  }
}
