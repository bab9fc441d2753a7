import type { Redis } from 'ioredis';
import { keys } from './keys.js';

/** Why a job was given up, and after how many deliveries. */
export interface ParkedJob {
  reason: string;
  attempts: number;
  /** When it was parked (ISO 8601). */
  at: string;
}

/**
 * Work given up after repeated failures of the system (`nd:enrich:parked`: item id → JSON
 * ParkedJob), kept for an operator to look at instead of being retried forever.
 */
export class ParkedJobStore {
  constructor(private readonly redis: Redis) {}

  /** Parks the job of item `id` (replacing an earlier record for it). */
  async park(id: string, job: ParkedJob): Promise<void> {
    await this.redis.hset(keys.enrichmentParked, id, JSON.stringify({ reason: job.reason, attempts: job.attempts, at: job.at }));
  }

  /** The parked job of item `id`, if any. */
  async get(id: string): Promise<ParkedJob | null> {
    const raw = await this.redis.hget(keys.enrichmentParked, id);
    return raw === null ? null : (JSON.parse(raw) as ParkedJob);
  }
}
