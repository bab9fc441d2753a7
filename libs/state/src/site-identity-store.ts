import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { keys } from './keys.js';
import { withRedis } from './redis.js';

/**
 * The site hash (`nd:site`): this site's identity — its id, and the Ed25519 key federation signs
 * with — and the versions of stored data shapes. The id is made here and nowhere else: whichever
 * service starts first (discovery announcing on the LAN, the gateway answering linked sites) makes it
 * with HSETNX, so every service of a site sees the same id.
 */
export class SiteIdentityStore {
  constructor(private readonly redis: Redis) {}

  /** This site's id, made on first use. */
  getOrCreate(): Promise<string> {
    return withRedis(async () => {
      await this.redis.hsetnx(keys.site, 'siteId', randomBytes(9).toString('base64url'));
      return (await this.redis.hget(keys.site, 'siteId'))!;
    });
  }

  /** This site's id and private key (PEM), both made on first use; `make` creates a key pair. */
  getOrCreateWithKey(make: () => { privatePem: string }): Promise<{ siteId: string; privatePem: string }> {
    return withRedis(async () => {
      const siteId = await this.getOrCreate();
      if (!(await this.redis.hexists(keys.site, 'privateKey'))) await this.redis.hsetnx(keys.site, 'privateKey', make().privatePem);
      return { siteId, privatePem: (await this.redis.hget(keys.site, 'privateKey'))! };
    });
  }

  /** The version the stored data `name` was last built with (0 when never recorded). */
  dataVersion(name: 'indexVersion'): Promise<number> {
    return withRedis(async () => Number((await this.redis.hget(keys.site, name)) ?? 0));
  }

  /** Records that the stored data `name` is now in `version`'s shape. */
  setDataVersion(name: 'indexVersion', version: number): Promise<void> {
    return withRedis(async () => {
      await this.redis.hset(keys.site, name, String(version));
    });
  }
}
