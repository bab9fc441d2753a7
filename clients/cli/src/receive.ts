import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { FINAL_TRANSFER_STATES, Transfer } from '@nondivy/contracts';
import { ApiError, problemMessageOf, type Api } from './api.js';
import type { Context } from './context.js';
import { DeviceSession } from './device.js';
import { type DirectAnswer, type DirectPut, DirectServer } from './direct-server.js';
import { CliError, isInterruption, messageOf } from './errors.js';
import { formatBytes, printable } from './format.js';
import { IncomingFailure, IncomingFiles } from './incoming.js';
import { ProgressBar } from './progress.js';
import { canPrompt, confirm } from './prompt.js';
import { TransferList } from './schemas.js';
import { POLL_MS, sleep } from './wait.js';

export interface ReceiveOptions {
  dir: string;
  yes: boolean;
  once: boolean;
  listenHost: string;
  listenPort: number;
  advertiseUrl?: string;
}

type FileState = 'pending' | 'receiving' | 'done';

/** A transfer this session accepted, until it is completed or failed. */
interface Active {
  t: Transfer;
  directToken: string;
  files: FileState[];
  paths: (string | null)[];
  /** The relay downloads have started. */
  relaying: boolean;
  /** Aborts the files being received (the transfer failed or was cancelled). */
  aborter: AbortController;
  over: boolean;
  lastActivity: number;
}

/** Why an offer was rejected, as the sender reads it. */
export const DECLINED = 'the receiver declined';
export const NO_TERMINAL = 'the receiver is not at a terminal; run receive with --yes to accept';

/** An accepted transfer with no byte arriving for this long is given up. */
const IDLE_MS = 5 * 60_000;
/** Pages of open offers read per look (100 each: far more than a server lets a device have). */
const MAX_OFFER_PAGES = 10;

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The address other devices reach the direct endpoint at. */
export function directUrlFor(listenHost: string, port: number): string {
  let host = listenHost;
  if (host === '0.0.0.0' || host === '::' || host === '') {
    host = '127.0.0.1';
    search: for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.family === 'IPv4' && !a.internal) {
          host = a.address;
          break search;
        }
      }
    }
  }
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * `nondivy receive`: a registered device with a direct endpoint, polling for offers, accepting
 * them (--yes, or asked on the terminal), and taking the bytes directly (PUT from the sender) or
 * from the relay (GET from the site), each file checked against its offered size and SHA-256.
 */
export class Receiver {
  private readonly active = new Map<string, Active>();
  private readonly seen = new Set<string>();
  private readonly incoming: IncomingFiles;
  private offers: Promise<void> = Promise.resolve();
  private session!: DeviceSession;
  /** With --once: the outcome of the first transfer. */
  private firstOutcome: boolean | undefined;
  /** With --once: an offer was taken up (later ones are left alone). */
  private tookOffer = false;

  constructor(
    private readonly ctx: Context,
    private readonly api: Api,
    private readonly opts: ReceiveOptions,
  ) {
    this.incoming = new IncomingFiles(opts.dir);
  }

  /** Runs until interrupted, or (--once) until the first transfer is over; resolves to the exit status. */
  async run(): Promise<number> {
    const { ctx, opts } = this;
    await mkdir(opts.dir, { recursive: true });
    await access(opts.dir, constants.W_OK).catch(() => {
      throw new CliError(`cannot write in ${opts.dir}`);
    });
    const server = new DirectServer((put) => this.onDirectPut(put));
    let port: number;
    try {
      port = await server.listen(opts.listenHost, opts.listenPort);
    } catch (err) {
      throw new CliError(`cannot listen on ${opts.listenHost}:${opts.listenPort} (${messageOf(err)})`);
    }
    let session: DeviceSession | undefined;
    try {
      const directUrl = opts.advertiseUrl ?? directUrlFor(opts.listenHost, port);
      session = this.session = await DeviceSession.register(this.api, ctx.out, ctx.deviceName, directUrl);
      ctx.out.note(
        `receiving into ${printable(resolvePath(opts.dir))} as "${printable(session.device.name)}" (device ${session.id}, direct at ${directUrl})${opts.once ? '' : '; Ctrl-C to stop'}`,
      );
      if (!opts.yes && !canPrompt()) ctx.out.warn('stdin is not a terminal, so offers cannot be asked about: each is rejected (run receive with --yes to accept them)');
      try {
        return await this.loop();
      } finally {
        await this.stopAll('the receiver stopped');
      }
    } finally {
      // Closing the endpoint cuts the senders still sending; their partial files go before exit.
      await server.close();
      await this.incoming.drain();
      await session?.close();
    }
  }

  private async loop(): Promise<number> {
    const { ctx, opts } = this;
    let failing = false;
    try {
      for (;;) {
        if (opts.once && this.firstOutcome !== undefined) return this.firstOutcome ? 0 : 1;
        try {
          await this.tick();
          if (failing) ctx.out.warn('the server answers again');
          failing = false;
        } catch (err) {
          if (isInterruption(err, ctx.signal)) throw err;
          // The device is gone (expired, or the site restarted): nothing more can come.
          if (err instanceof ApiError && err.status === 401) throw new CliError(`the site no longer knows this device (${err.message})`);
          if (!failing) ctx.out.warn(`cannot poll for offers: ${messageOf(err)}`);
          failing = true;
        }
        await sleep(POLL_MS, ctx.signal);
      }
    } catch (err) {
      if (isInterruption(err, ctx.signal)) return opts.once ? 130 : 0;
      throw err;
    }
  }

  /**
   * This device's open offers, every page of them (the server caps how many a device may have, so
   * they are few); `MAX_OFFER_PAGES` bounds the walk against a server that keeps giving cursors.
   */
  private async openOffers(): Promise<Transfer[]> {
    const all: Transfer[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_OFFER_PAGES; page++) {
      const query = { device: this.session.id, state: 'offered', limit: 100, cursor };
      const { transfers, nextCursor } = await this.api.call(TransferList, 'GET', '/transfers', { query, deviceToken: this.session.token });
      all.push(...transfers);
      if (!nextCursor) break;
      cursor = nextCursor;
    }
    return all;
  }

  /** One look at this device's transfers: new offers, and the state of the accepted ones. */
  private async tick(): Promise<void> {
    const me = this.session.id;
    const transfers = await this.openOffers();
    const byId = new Map(transfers.map((t) => [t.id, t]));
    for (const t of transfers) {
      if (t.to.device !== me || t.state !== 'offered' || this.seen.has(t.id)) continue;
      this.seen.add(t.id);
      this.offers = this.offers.then(() => this.onOffer(t)).catch((err: unknown) => this.ctx.out.warn(`offer ${t.id}: ${messageOf(err)}`));
    }
    for (const a of this.active.values()) {
      if (a.over) continue;
      const t = byId.get(a.t.id) ?? (await this.api.call(Transfer, 'GET', `/transfers/${a.t.id}`, { deviceToken: this.session.token }));
      this.onUpdate(a, t);
    }
  }

  private emit(event: 'offer' | 'text' | 'accepted' | 'rejected' | 'received' | 'failed', t: Transfer, extra: Record<string, unknown> = {}) {
    this.ctx.out.data({ event, transfer: t.id, from: t.from, ...extra });
  }

  private over(ok: boolean) {
    this.firstOutcome ??= ok;
  }

  private async onOffer(t: Transfer): Promise<void> {
    const { ctx, opts } = this;
    if (ctx.signal.aborted || (opts.once && this.tookOffer)) return;
    this.tookOffer = true;
    const total = t.files.reduce((s, f) => s + f.size, 0);
    this.emit('offer', t, { files: t.files, expiresAt: t.expiresAt });
    ctx.out.line(`offer ${t.id} from ${printable(t.from.name)} (${printable(t.from.owner)}${t.from.site ? `@${printable(t.from.site)}` : ''}): ${t.files.length} file${t.files.length === 1 ? '' : 's'}, ${formatBytes(total)}`);
    for (const f of t.files) ctx.out.line(`  ${printable(f.name)}  ${formatBytes(f.size)}`);
    if (t.text) {
      this.emit('text', t, { text: t.text });
      for (const line of t.text.split('\n')) ctx.out.line(`  > ${printable(line)}`);
    }

    let accept: boolean;
    try {
      accept = opts.yes || (canPrompt() && (await confirm('Accept?', ctx.signal)));
    } catch (err) {
      if (isInterruption(err, ctx.signal)) return;
      throw err;
    }
    const device = { deviceToken: this.session.token };
    if (!accept) {
      // The sender sees this reason: it says what the receiver's user can do about it.
      const reason = opts.yes || canPrompt() ? DECLINED : NO_TERMINAL;
      try {
        await this.api.send('POST', `/transfers/${t.id}/reject`, { ...device, json: { reason } });
        this.emit('rejected', t, { reason });
        ctx.out.line(`rejected ${t.id}: ${reason}`);
      } catch (err) {
        this.reportFailed(t, `could not reject: ${messageOf(err)}`);
      }
      this.over(false);
      return;
    }

    // Known before the accept is sent: a quick sender's first PUT may arrive right after it.
    const a: Active = {
      t,
      directToken: randomBytes(32).toString('base64url'),
      files: t.files.map(() => 'pending'),
      paths: t.files.map(() => null),
      relaying: false,
      aborter: new AbortController(),
      over: false,
      lastActivity: Date.now(),
    };
    this.active.set(t.id, a);
    try {
      a.t = await this.api.call(Transfer, 'POST', `/transfers/${t.id}/accept`, { ...device, json: { directToken: a.directToken } });
    } catch (err) {
      a.over = true;
      this.active.delete(t.id);
      this.reportFailed(t, `could not accept: ${messageOf(err)}`);
      this.over(false);
      return;
    }
    this.emit('accepted', a.t);
    ctx.out.line(`accepted ${t.id}, waiting for the bytes…`);
    if (t.files.length === 0) await this.complete(a);
  }

  /** A newer look at an accepted transfer. */
  private onUpdate(a: Active, t: Transfer) {
    a.t = { ...t, files: a.t.files };
    if (t.state !== 'accepted' && t.state !== 'completed' && (FINAL_TRANSFER_STATES as readonly string[]).includes(t.state)) {
      void this.fail(a, t.reason ? `${t.state}: ${t.reason}` : t.state, false);
      return;
    }
    if (t.state === 'accepted' && t.route === 'relay' && !a.relaying) {
      a.relaying = true;
      void this.relay(a);
    }
    if (t.state === 'accepted' && !a.files.includes('receiving') && Date.now() - a.lastActivity > IDLE_MS) {
      void this.fail(a, `nothing arrived for ${IDLE_MS / 60_000} minutes`, true);
    }
  }

  /** Takes the files not received yet from the relay, one after the other (the sender's order). */
  private async relay(a: Active): Promise<void> {
    for (const [i, f] of a.t.files.entries()) {
      if (a.over) return;
      if (a.files[i] !== 'pending') continue;
      a.files[i] = 'receiving';
      try {
        const res = await this.api.download(`/transfers/${a.t.id}/files/${f.n}`, { deviceToken: this.session.token, signal: a.aborter.signal });
        if (res.statusCode !== 200) {
          let text = '';
          for await (const chunk of res) if (text.length < 4096) text += String(chunk);
          throw new IncomingFailure(`relay: ${problemMessageOf(res.statusCode ?? 0, res.statusMessage ?? '', text)}`, 502);
        }
        await this.receiveFile(a, i, res);
      } catch (err) {
        if (a.over || isInterruption(err, this.ctx.signal)) return;
        await this.fail(a, messageOf(err), true);
        return;
      }
    }
  }

  private async receiveFile(a: Active, i: number, source: AsyncIterable<Uint8Array>): Promise<void> {
    const f = a.t.files[i]!;
    const bar = new ProgressBar(`receiving ${IncomingFiles.nameOf(f)}`, f.size, this.ctx.progress);
    a.lastActivity = Date.now();
    try {
      const path = await this.incoming.receive(f, source, {
        signal: a.aborter.signal,
        onBytes: (n) => {
          a.lastActivity = Date.now();
          bar.add(n);
        },
      });
      bar.finish(true);
      a.files[i] = 'done';
      a.paths[i] = path;
      this.ctx.out.line(`  ${printable(f.name)} → ${printable(path)}`);
    } catch (err) {
      bar.finish(false);
      if (a.files[i] === 'receiving') a.files[i] = 'pending';
      throw err;
    }
    if (a.files.every((s) => s === 'done')) await this.complete(a);
  }

  /** The direct endpoint's decision on one PUT. */
  private async onDirectPut({ transferId, n, token, req }: DirectPut): Promise<DirectAnswer> {
    const a = this.active.get(transferId);
    if (!a) return { status: 404, detail: 'No such transfer here' };
    if (!token) return { status: 401, detail: 'Send the transfer\'s token: Authorization: Bearer …' };
    if (!timingSafeEqual(digest(token), digest(a.directToken))) return { status: 403, detail: 'Wrong token for this transfer' };
    if (a.over) return { status: 409, detail: `The transfer is over (${a.t.state})` };
    const i = a.t.files.findIndex((f) => f.n === n);
    if (i < 0) return { status: 404, detail: 'No such file in this transfer' };
    if (a.files[i] !== 'pending') return { status: 409, detail: a.files[i] === 'done' ? 'This file was received already' : 'This file is being received' };
    const f = a.t.files[i]!;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > f.size) {
      await this.fail(a, `${IncomingFiles.nameOf(f)}: the sender announced more bytes than offered`, true);
      return { status: 413, detail: `More bytes than the ${f.size} offered` };
    }
    if (declared !== undefined && Number(declared) !== f.size) {
      await this.fail(a, `${IncomingFiles.nameOf(f)}: the sender announced fewer bytes than offered`, true);
      return { status: 400, detail: `Content-Length must be the offered size (${f.size})` };
    }
    a.files[i] = 'receiving';
    const cut = () => req.destroy();
    a.aborter.signal.addEventListener('abort', cut, { once: true });
    try {
      await this.receiveFile(a, i, req);
      return { status: 204 };
    } catch (err) {
      // This request answers the failure itself (413, 422…): failing the transfer must not cut it.
      a.aborter.signal.removeEventListener('abort', cut);
      if (a.over || isInterruption(err, this.ctx.signal)) return { status: 409, detail: `The transfer is over (${a.t.state})` };
      await this.fail(a, messageOf(err), true);
      return err instanceof IncomingFailure ? { status: err.status, detail: err.message } : { status: 500, detail: messageOf(err) };
    } finally {
      a.aborter.signal.removeEventListener('abort', cut);
    }
  }

  /** Every file verified: confirm the delivery to the site. */
  private async complete(a: Active): Promise<void> {
    if (a.over) return;
    a.over = true;
    this.active.delete(a.t.id);
    try {
      await this.api.send('POST', `/transfers/${a.t.id}/finish`, { deviceToken: this.session.token, json: { ok: true }, cleanup: true });
    } catch (err) {
      this.ctx.out.warn(`the files of ${a.t.id} are here, but the site was not told (${messageOf(err)})`);
    }
    const files = a.t.files.map((f, i) => ({ n: f.n, name: f.name, size: f.size, sha256: f.sha256, path: a.paths[i] && resolvePath(a.paths[i]!) }));
    this.emit('received', a.t, { files });
    this.ctx.out.line(`received ${a.t.id}: ${files.length} file${files.length === 1 ? '' : 's'} from ${printable(a.t.from.name)}`);
    this.over(true);
  }

  /**
   * Gives a transfer up: stops its files (their partial files are deleted), tells the site when
   * the failure is ours to report, and reports it.
   */
  private async fail(a: Active, reason: string, report: boolean): Promise<void> {
    if (a.over) return;
    a.over = true;
    this.active.delete(a.t.id);
    a.aborter.abort(new Error(reason));
    if (report) {
      await this.api
        .send('POST', `/transfers/${a.t.id}/finish`, { deviceToken: this.session.token, json: { ok: false, reason: reason.slice(0, 500) }, cleanup: true })
        .catch(() => undefined);
    }
    this.reportFailed(a.t, reason);
    this.over(false);
  }

  private reportFailed(t: Transfer, reason: string) {
    this.emit('failed', t, { reason });
    this.ctx.out.line(`failed ${t.id}: ${printable(reason)}`);
  }

  /** On the way out: every transfer still going fails (partials deleted). */
  private async stopAll(reason: string): Promise<void> {
    await Promise.all([...this.active.values()].map((a) => this.fail(a, reason, true)));
  }
}
