import type { Readable } from 'node:stream';
import { DeviceId, Transfer, type OfferedFile } from '@nondivy/contracts';
import { AppError } from '@nondivy/errors';
import { digestOfSha256 } from '@nondivy/federation';
import type { Logger } from '@nondivy/log';
import type { RedisTransferStore } from '@nondivy/state';
import { z } from 'zod';
import type { Federation } from '../federation.js';

/**
 * Transfers whose other device is on a linked site: the offer, state changes and bytes are passed
 * between the two gateways (signed), and each side keeps a record under the same transfer id.
 */
export class RemoteTransfers {
  constructor(
    private readonly federation: Federation,
    private readonly transfers: RedisTransferStore,
    private readonly log: Logger,
  ) {}

  /** Offers files to `DEVICE@SITE`; the linked site checks the device is online. */
  async offer(from: { device: string; name: string; owner: string }, to: string, files: OfferedFile[], ttlMs: number, id: string, caps: { maxSent: number; maxReceived: number }): Promise<Transfer> {
    const at = to.lastIndexOf('@');
    const link = await this.federation.resolveSite(to.slice(at + 1));
    const remote = await this.federation.call(link, 'POST', '/federation/v1/transfers', Transfer, {
      id,
      from: { device: from.device, name: from.name },
      to: to.slice(0, at),
      files,
    });
    if (!DeviceId.safeParse(remote.to.device).success || remote.id !== id) throw new AppError('unavailable', `${link.name} answered the offer in an unexpected shape`);
    return this.transfers.create({
      id,
      from,
      to: { device: remote.to.device, name: remote.to.name, owner: '', site: link.siteId },
      files: files.map((f, n) => ({ ...f, n })),
      ttlMs,
    }, caps);
  }

  /** Tells the other site of a state change made here (best effort: its own expiry covers a miss). */
  forward(t: Transfer): void {
    const site = t.from.site ?? t.to.site;
    if (!site) return;
    void (async () => {
      try {
        await this.federation.call(await this.federation.link(site), 'POST', `/federation/v1/transfers/${t.id}/state`, z.unknown(), { state: t.state, reason: t.reason ?? undefined });
      } catch (err) {
        this.log.warn({ transfer: t.id, site, err: { message: (err as Error).message } }, 'could not tell the linked site of a transfer change');
      }
    })();
  }

  /** Streams a file our sender PUTs on to the receiving site's relay. */
  async send(t: Transfer, n: number, body: Readable): Promise<void> {
    const file = t.files[n]!;
    if (!file.sha256) throw new AppError('bad_input', 'Files sent to a linked site need their SHA-256');
    const link = await this.federation.link(t.to.site!);
    const res = await this.federation.request(link, 'PUT', `/federation/v1/transfers/${t.id}/files/${n}`, { body, digest: digestOfSha256(file.sha256), timeoutMs: null });
    if (!res.ok) {
      const detail = ((await res.json().catch(() => ({}))) as { detail?: string }).detail;
      throw new AppError('unavailable', `${link.name}: ${detail ?? `relay answered ${res.status}`}`);
    }
    await res.body?.cancel();
  }
}
