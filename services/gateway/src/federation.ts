import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { Item, ItemList, type SearchQuery } from '@nondivy/contracts';
import { z } from 'zod';
import { AppError, badInput, conflict, notFound, unauthorized } from '@nondivy/errors';
import {
  bodyDigest,
  decodeInvite,
  encodeInvite,
  generateSiteKeys,
  loadSiteKeys,
  SIGNATURE_HEADERS as H,
  signParts,
  verifyParts,
  type SiteKeys,
} from '@nondivy/federation';
import type { Logger } from '@nondivy/log';
import type { RedisFederationStore, StoredLink } from '@nondivy/state';
import type { FastifyRequest } from 'fastify';

export interface FederationOptions {
  store: RedisFederationStore;
  log: Logger;
  siteName: string;
  /** How linked sites reach this gateway. */
  publicUrl: string;
  /** Bound on every call to a linked site that a user waits for (search, lists). */
  timeoutMs: number;
  inviteTtlMs: number;
  /** Accepted clock difference between sites, both ways. */
  clockSkewMs: number;
}

export interface SiteAnswer {
  siteId: string;
  name: string;
  ok: boolean;
  error?: string;
}

/** What linked sites see of a link (never its key material). */
export const publicLink = (l: StoredLink) => ({
  siteId: l.siteId,
  name: l.name,
  url: l.url,
  state: l.state,
  lastContactAt: l.lastContactAt,
  unreachableSince: l.unreachableSince,
  latencyMs: l.latencyMs,
  createdAt: l.createdAt,
});

const HANDSHAKE_CONTEXT = 'nondivy-handshake-v1';
/** The largest answer taken to a handshake (a real one is well under 1 KiB). */
const MAX_HANDSHAKE_ANSWER_BYTES = 16 * 1024;
/** The largest JSON answer taken from a linked site. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/** A response body as text, refusing more than `max` bytes. */
async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > max) {
      await res.body.cancel().catch(() => undefined);
      throw new AppError('unavailable', 'A linked site sent an answer that is too large');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * This site's side of federation: its identity and key, invites and links, signed calls to linked
 * sites, verification of their calls, and the questions users ask across sites (search, devices).
 */
export class Federation {
  readonly siteId: string;
  private readonly keys: SiteKeys;
  private pinger: NodeJS.Timeout | null = null;

  private constructor(
    private readonly o: FederationOptions,
    identity: { siteId: string; privatePem: string },
  ) {
    this.siteId = identity.siteId;
    this.keys = loadSiteKeys(identity.privatePem);
  }

  static async create(o: FederationOptions): Promise<Federation> {
    return new Federation(o, await o.store.identity(() => generateSiteKeys()));
  }

  get name() {
    return this.o.siteName;
  }

  get publicKey() {
    return this.keys.publicKey;
  }

  links(): Promise<StoredLink[]> {
    return this.o.store.links();
  }

  async link(siteId: string): Promise<StoredLink> {
    const link = await this.o.store.getLink(siteId);
    if (!link) throw notFound('No such linked site');
    return link;
  }

  /** A linked site by id or by name (names are unique enough to type; ids always are). */
  async resolveSite(idOrName: string): Promise<StoredLink> {
    const byId = await this.o.store.getLink(idOrName);
    if (byId) return byId;
    const byName = (await this.links()).filter((l) => l.name === idOrName);
    if (byName.length === 1) return byName[0]!;
    throw byName.length ? conflict(`Several linked sites are named ${idOrName}: use the site id`) : notFound(`No linked site ${idOrName}`);
  }

  // ---- outbound ------------------------------------------------------------------------------

  /**
   * A signed request to a linked site. `body` may be a stream (then `digest` names its SHA-256,
   * known in advance). Records how the contact went on the link.
   */
  async request(
    link: Pick<StoredLink, 'siteId' | 'url'>,
    method: string,
    path: string,
    opts: { json?: unknown; body?: Readable; digest?: string; timeoutMs?: number | null; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const url = new URL(path, link.url);
    const payload = opts.json !== undefined ? Buffer.from(JSON.stringify(opts.json)) : null;
    const headers: Record<string, string> = { ...opts.headers, ...this.sign(link, method, url, opts.digest ?? bodyDigest(payload ?? '')) };
    if (payload) headers['content-type'] = 'application/json';
    if (opts.body) headers['content-type'] = 'application/octet-stream';
    const timeout = opts.timeoutMs === null ? undefined : AbortSignal.timeout(opts.timeoutMs ?? this.o.timeoutMs);
    const signal = timeout && opts.signal ? AbortSignal.any([timeout, opts.signal]) : (timeout ?? opts.signal);
    const t0 = performance.now();
    try {
      const res = await fetch(url, {
        method,
        headers,
        // A linked site's answer is final: following a redirect would let it send us (and our
        // signed headers) to any address, such as a service on this host.
        redirect: 'manual',
        body: payload ?? (opts.body as unknown as RequestInit['body']),
        signal,
        ...(opts.body ? { duplex: 'half' } : {}),
      } as RequestInit);
      // An answer that refuses us (401/403), redirects or fails (5xx) is not a working link.
      const redirect = [301, 302, 303, 307, 308].includes(res.status);
      const working = !redirect && res.status < 500 && res.status !== 401 && res.status !== 403;
      void this.o.store.markContact(link.siteId, working, performance.now() - t0).catch(() => undefined);
      if (redirect) {
        await res.body?.cancel();
        throw new AppError('unavailable', 'The linked site answered with a redirect, which is not followed');
      }
      return res;
    } catch (err) {
      if (err instanceof AppError) throw err;
      void this.o.store.markContact(link.siteId, false).catch(() => undefined);
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new AppError('unavailable', timedOut ? `The linked site did not answer within ${opts.timeoutMs ?? this.o.timeoutMs} ms` : 'The linked site cannot be reached', { cause: err });
    }
  }

  /** The signature headers of a request to a linked site (see libs/federation). */
  private sign(link: Pick<StoredLink, 'siteId'>, method: string, url: URL, digest: string): Record<string, string> {
    const parts = { method, path: url.pathname + url.search, host: url.host, site: this.siteId, to: link.siteId, date: String(Date.now()), nonce: randomBytes(16).toString('base64url'), digest };
    return {
      [H.site]: parts.site,
      [H.to]: parts.to,
      [H.date]: parts.date,
      [H.nonce]: parts.nonce,
      [H.digest]: digest,
      [H.signature]: signParts(this.keys, parts),
    };
  }

  /**
   * A signed GET whose answer is streamed on as it comes (node:http, not fetch: about twice the
   * throughput for large bodies). Resolves with the response once its head arrives; redirects fail.
   */
  stream(link: StoredLink, path: string, headers: Record<string, string>): Promise<IncomingMessage> {
    const url = new URL(path, link.url);
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method: 'GET', headers: { ...headers, ...this.sign(link, 'GET', url, bodyDigest('')) } }, (res) => {
        const status = res.statusCode ?? 0;
        const redirect = [301, 302, 303, 307, 308].includes(status);
        void this.o.store.markContact(link.siteId, !redirect && status < 500 && status !== 401 && status !== 403, performance.now() - t0).catch(() => undefined);
        if (redirect) {
          res.destroy();
          reject(new AppError('unavailable', 'The linked site answered with a redirect, which is not followed'));
        } else resolve(res);
      });
      // Bounded wait for the answer to start; a slow body is the client's business.
      req.setTimeout(Math.max(this.o.timeoutMs * 4, 5000), () => req.destroy(new Error('timeout')));
      req.once('response', () => req.setTimeout(0));
      req.once('error', (err) => {
        void this.o.store.markContact(link.siteId, false).catch(() => undefined);
        reject(new AppError('unavailable', 'The linked site cannot be reached', { cause: err }));
      });
      req.end();
    });
  }

  /**
   * A signed JSON call that must answer 2xx with a body matching `schema` (at most 4 MiB); the
   * linked site's problem detail otherwise. A malformed answer is that site's failure, not ours.
   */
  async call<S extends z.ZodType>(link: StoredLink, method: string, path: string, schema: S, json?: unknown, timeoutMs?: number): Promise<z.infer<S>> {
    const res = await this.request(link, method, path, { json, timeoutMs });
    const text = await readCapped(res, MAX_ANSWER_BYTES);
    if (!res.ok) {
      let detail = `${res.status}`;
      try {
        detail = String((JSON.parse(text) as { detail?: unknown }).detail ?? detail).slice(0, 300);
      } catch {
        /* not a problem document */
      }
      throw new AppError(res.status === 404 ? 'not_found' : res.status === 409 ? 'conflict' : res.status === 400 ? 'bad_input' : 'unavailable', `${link.name}: ${detail}`);
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new AppError('unavailable', `${link.name} answered something that is not JSON`);
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) throw new AppError('unavailable', `${link.name} answered in an unexpected shape`);
    return checked.data;
  }

  // ---- inbound -------------------------------------------------------------------------------

  /**
   * Checks a request from a linked site: addressed to us, from a linked site, within the clock
   * window, with the right body digest (`digest` overrides it for streamed bodies) and a valid
   * signature, with a nonce never used before. Returns the link; throws 401 (and logs) otherwise.
   */
  async verify(req: FastifyRequest, rawBody: Buffer | null, digest?: string): Promise<StoredLink> {
    const h = (name: string) => {
      const v = req.headers[name];
      return typeof v === 'string' ? v : '';
    };
    const refuse = (reason: string, site?: string): never => {
      this.o.log.warn({ reason, site: site || undefined, ip: req.ip, method: req.method, path: req.url }, 'refused a federation request');
      throw unauthorized(`Federation request refused: ${reason}`);
    };
    const site = h(H.site);
    const signature = h(H.signature);
    if (!site || !signature) return refuse('not signed');
    if (h(H.to) !== this.siteId) return refuse('addressed to another site', site);
    const link = await this.o.store.getLink(site);
    if (!link) return refuse('not a linked site', site);
    const date = Number(h(H.date));
    if (!Number.isFinite(date) || Math.abs(Date.now() - date) > this.o.clockSkewMs) return refuse('timestamp outside the accepted window', site);
    const expectedDigest = digest ?? bodyDigest(rawBody ?? '');
    if (h(H.digest) !== expectedDigest) return refuse('body digest does not match', site);
    const parts = { method: req.method, path: req.url, host: h('host'), site, to: this.siteId, date: h(H.date), nonce: h(H.nonce), digest: expectedDigest };
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(parts.nonce)) return refuse('bad nonce', site);
    if (!verifyParts(link.publicKey, parts, signature)) return refuse('bad signature', site);
    if (!(await this.o.store.useNonce(site, parts.nonce, 2 * this.o.clockSkewMs))) return refuse('replayed (nonce already used)', site);
    void this.o.store.markContact(site, true).catch(() => undefined);
    return link;
  }

  // ---- linking -------------------------------------------------------------------------------

  async createInvite(): Promise<{ code: string; expiresAt: string; url: string }> {
    const secret = randomBytes(24).toString('base64url');
    await this.o.store.createInvite(secret, this.o.inviteTtlMs, { createdAt: new Date().toISOString() });
    const code = encodeInvite({ url: this.o.publicUrl, siteId: this.siteId, publicKey: this.keys.publicKey, secret });
    return { code, expiresAt: new Date(Date.now() + this.o.inviteTtlMs).toISOString(), url: this.o.publicUrl };
  }

  /** Uses another site's invite: a handshake with it, after which both sites know each other. */
  async acceptInvite(code: string): Promise<StoredLink> {
    const invite = decodeInvite(code);
    if (invite.siteId === this.siteId) throw badInput('That invite is from this site');
    const nonce = randomBytes(16).toString('base64url');
    const pending = { siteId: invite.siteId, url: invite.url };
    // The code names any address an admin pastes: whatever is there, the caller learns only whether a
    // Nondivy site took the invite. Nothing the other end says is echoed, and its answer is size-capped;
    // the real reason goes to our log.
    const notNondivy = (reason: string, cause?: unknown) => {
      this.o.log.warn({ url: invite.url, reason }, 'an invite could not be used');
      return new AppError('unavailable', 'That site did not answer as a Nondivy site', { cause });
    };
    let res: Response;
    let text: string;
    try {
      res = await this.request(pending, 'POST', '/federation/v1/handshake', {
        json: { secret: invite.secret, nonce, site: { siteId: this.siteId, name: this.o.siteName, url: this.o.publicUrl, publicKey: this.keys.publicKey } },
        timeoutMs: Math.max(this.o.timeoutMs, 5000),
      });
      text = await readCapped(res, MAX_HANDSHAKE_ANSWER_BYTES);
    } catch (err) {
      throw notNondivy((err as Error).message, err);
    }
    if (res.status === 403 && /^application\/problem\+json/.test(res.headers.get('content-type') ?? '')) {
      this.o.log.warn({ url: invite.url, site: invite.siteId }, 'the other site refused the invite');
      throw new AppError('forbidden', 'That site refused the invite: it is unknown, expired or already used (an invite works once)');
    }
    if (!res.ok) throw notNondivy(`answered ${res.status}`);
    let body: { site?: { siteId: string; name: string; url: string; publicKey: string }; proof?: string };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw notNondivy('the answer is not JSON');
    }
    const remote = body?.site;
    // The answer must come from the key the invite named: otherwise someone else answered.
    if (
      !remote ||
      remote.siteId !== invite.siteId ||
      remote.publicKey !== invite.publicKey ||
      typeof body.proof !== 'string' ||
      typeof remote.name !== 'string' ||
      remote.name.length < 1 ||
      remote.name.length > 100 ||
      !verifyParts(invite.publicKey, handshakeParts(invite.siteId, this.siteId, nonce), body.proof)
    ) {
      throw notNondivy('the answer does not prove the key of the invite');
    }
    const link = newLink({ ...remote, url: invite.url });
    await this.refuseTakeover(link);
    await this.o.store.saveLink(link);
    this.o.log.info({ site: link.siteId, name: link.name, url: link.url }, 'linked to another site');
    return link;
  }

  /** The inviting side of a handshake: one use of the invite, then the link. */
  async handshake(body: { secret: string; nonce: string; site: { siteId: string; name: string; url: string; publicKey: string } }, ip: string) {
    if (!(await this.o.store.consumeInvite(body.secret))) {
      this.o.log.warn({ ip, site: body.site.siteId }, 'refused a handshake: invite unknown, expired or already used');
      throw new AppError('forbidden', 'This invite is unknown, expired or already used');
    }
    if (body.site.siteId === this.siteId) throw badInput('A site cannot link to itself');
    const link = newLink({ ...body.site, url: new URL(body.site.url).origin });
    await this.refuseTakeover(link);
    await this.o.store.saveLink(link);
    this.o.log.info({ site: link.siteId, name: link.name, url: link.url }, 'linked to another site');
    const proof = signParts(this.keys, handshakeParts(this.siteId, body.site.siteId, body.nonce));
    return { site: { siteId: this.siteId, name: this.o.siteName, url: this.o.publicUrl, publicKey: this.keys.publicKey }, proof };
  }

  /** A site already linked under this id keeps its key: another key is another site. */
  private async refuseTakeover(link: StoredLink) {
    const existing = await this.o.store.getLink(link.siteId);
    if (existing && existing.publicKey !== link.publicKey) {
      this.o.log.warn({ site: link.siteId, url: link.url }, 'refused a link that claims the id of a linked site with another key');
      throw conflict('A site with this id is already linked with another key; unlink it first');
    }
  }

  /** Unlinks on both sides, or on ours alone when the other does not answer. */
  async unlink(siteId: string): Promise<{ remote: 'unlinked' | 'unreachable' }> {
    const link = await this.link(siteId);
    let remote: 'unlinked' | 'unreachable' = 'unreachable';
    try {
      const res = await this.request(link, 'DELETE', '/federation/v1/link');
      if (res.ok || res.status === 401) remote = 'unlinked';
    } catch {
      /* gone: unlink here anyway */
    }
    await this.o.store.removeLink(siteId);
    this.o.log.info({ site: siteId, remote }, 'unlinked a site');
    return { remote };
  }

  /** The other side unlinked us. */
  async forget(siteId: string) {
    await this.o.store.removeLink(siteId);
    this.o.log.info({ site: siteId }, 'a linked site unlinked this site');
  }

  /** Pings every linked site now and then, so a link's state follows reality (and recovers). */
  startPinger(intervalMs = 10_000): void {
    const ping = async () => {
      for (const link of await this.links().catch(() => [] as StoredLink[])) {
        try {
          const res = await this.request(link, 'GET', '/federation/v1/ping');
          await res.body?.cancel();
          if (!res.ok) await this.o.store.markContact(link.siteId, false);
        } catch {
          /* recorded by request() */
        }
      }
    };
    this.pinger = setInterval(() => void ping(), intervalMs);
    this.pinger.unref();
  }

  stop(): void {
    if (this.pinger) clearInterval(this.pinger);
  }

  // ---- across sites --------------------------------------------------------------------------

  /** Every linked site's answer to `fn`, each bounded by the timeout; failures named, not thrown. */
  async fanOut<T>(fn: (link: StoredLink) => Promise<T>): Promise<{ results: { link: StoredLink; value: T }[]; sites: SiteAnswer[] }> {
    const links = await this.links();
    const settled = await Promise.allSettled(links.map((l) => fn(l)));
    const results: { link: StoredLink; value: T }[] = [];
    const sites: SiteAnswer[] = [];
    settled.forEach((r, i) => {
      const link = links[i]!;
      if (r.status === 'fulfilled') {
        results.push({ link, value: r.value });
        sites.push({ siteId: link.siteId, name: link.name, ok: true });
      } else {
        sites.push({ siteId: link.siteId, name: link.name, ok: false, error: r.reason instanceof AppError ? r.reason.message : 'failed' });
      }
    });
    return { results, sites };
  }

  /** Searches every linked site's library (first page each), items marked with their site. */
  async search(query: SearchQuery): Promise<{ items: Item[]; sites: SiteAnswer[] }> {
    const params = new URLSearchParams();
    if (query.q) params.set('q', query.q);
    if (query.kind) params.set('kind', query.kind);
    for (const t of (query.tag as string[] | undefined) ?? []) params.append('tag', t);
    if (query.sort) params.set('sort', query.sort);
    params.set('limit', String(query.limit));
    const { results, sites } = await this.fanOut((link) => this.call(link, 'GET', `/federation/v1/library?${params}`, ItemList));
    return { items: results.flatMap(({ link, value }) => value.items.map((it: Item) => ({ ...it, site: link.siteId }))), sites };
  }
}

/** A link just made by a handshake: online, in contact now. */
function newLink(site: { siteId: string; name: string; url: string; publicKey: string }): StoredLink {
  const now = new Date().toISOString();
  return { siteId: site.siteId, name: site.name, url: site.url, publicKey: site.publicKey, createdAt: now, state: 'online', lastContactAt: now, unreachableSince: null, latencyMs: null };
}

/** What a site signs to prove, during a handshake, that it holds the key its invite named. */
function handshakeParts(signer: string, other: string, nonce: string) {
  return { method: HANDSHAKE_CONTEXT, path: '/', host: '', site: signer, to: other, date: '', nonce, digest: '' };
}
