import { createServer, isIPv4, Socket, type Server } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { AppError } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import { FtpRefusal } from './replies.js';

/** `::ffff:10.0.0.2` and `10.0.0.2` are the same client. */
export function normalizeIp(address: string | undefined): string {
  if (!address) return '';
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return (v4 ? v4[1]! : address).toLowerCase();
}

export interface ChannelOptions {
  /** The client's address on the control connection: the only address allowed on the data connection. */
  clientIp: string;
  /** Wraps the data connection in TLS (after AUTH TLS + PROT P). */
  tls?: SecureContext;
  /** How long to wait for the data connection to be made (PORT/EPRT) or secured with TLS. */
  connectTimeoutMs: number;
  /**
   * PASV/EPSV: how long the listener waits for the client's data connection. Short, so a port asked
   * for and never used goes back to the range quickly instead of being held for a transfer's timeout.
   */
  acceptTimeoutMs?: number;
  log: Logger;
}

/**
 * A data connection being set up by PASV/EPSV (we listen) or PORT/EPRT (we connect). Connecting and
 * securing are two steps because the 150 reply goes out between them: RFC 4217 leaves the order to
 * the client, and many (Python's ftplib, Go's FTP client, lftp) read 150 before they start TLS on
 * the data connection, while others (curl) start TLS first. The server, being the TLS server here,
 * only waits for the client's hello, so it works with both once 150 is not held back behind TLS.
 */
export interface DataChannel {
  readonly kind: 'passive' | 'active';
  /** Resolves with the connected TCP socket; rejects after the timeout. */
  connect(): Promise<Socket>;
  /**
   * With TLS on, the TLS server socket over `socket` once the handshake is done (it rejects after
   * the timeout, or when the connection closes first); without, `socket` itself. A client may offer
   * the control connection's TLS session for resumption: the same context serves both, so it is
   * resumed when still valid and a full handshake is done otherwise; it is never required.
   */
  secure(socket: Socket): Promise<Socket>;
  close(): void;
}

/** TLS on a data connection, as the TLS server, within `timeoutMs`. */
function secure(socket: Socket, context: SecureContext | undefined, timeoutMs: number): Promise<Socket> {
  if (!context) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const tls = new TLSSocket(socket, { isServer: true, secureContext: context });
    const fail = (err: AppError) => {
      clearTimeout(timer);
      tls.off('close', onClose);
      tls.destroy();
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new AppError('unavailable', 'TLS negotiation on the data connection timed out')), timeoutMs);
    const onClose = () => fail(new AppError('unavailable', 'The data connection closed during TLS negotiation'));
    tls.once('close', onClose);
    tls.once('secure', () => {
      clearTimeout(timer);
      tls.off('close', onClose);
      resolve(tls);
    });
    tls.once('error', (err) => fail(new AppError('unavailable', 'TLS negotiation on the data connection failed', { cause: err })));
  });
}

/** A listening port of the range, counted against one client address until released. */
export interface PassiveLease {
  server: Server;
  /** Gives the port's place in the address's share back (once; later calls do nothing). */
  release(): void;
}

/**
 * Hands out passive ports from the configured range, round robin, skipping those in use. Each
 * client address may hold only `perIp` listeners at once: the range is small (it is opened in the
 * firewall port by port), and without a share a few addresses asking PASV over and over from many
 * sessions would hold every port and leave everyone else with 451.
 */
export class PassivePorts {
  private next: number;
  private readonly held = new Map<string, number>();
  constructor(
    readonly min: number,
    readonly max: number,
    private readonly host: string,
    readonly perIp: number,
  ) {
    this.next = min;
  }

  /** Listeners held by `ip` now (for logs and tests). */
  heldBy(ip: string): number {
    return this.held.get(ip) ?? 0;
  }

  /**
   * Listens on the next free port of the range for `ip`; fails when the address already holds its
   * share or every port is busy. The share is taken before the (asynchronous) bind, so sessions of
   * one address asking at the same moment cannot overshoot it.
   */
  async listen(ip: string): Promise<PassiveLease> {
    if (this.heldBy(ip) >= this.perIp) {
      throw new AppError('unavailable', `Too many passive ports open for your address (${this.perIp}): use them or wait a few seconds`);
    }
    this.held.set(ip, this.heldBy(ip) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = this.heldBy(ip) - 1;
      if (n <= 0) this.held.delete(ip);
      else this.held.set(ip, n);
    };
    try {
      return { server: await this.bind(), release };
    } catch (err) {
      release();
      throw err;
    }
  }

  private async bind(): Promise<Server> {
    const count = this.max - this.min + 1;
    for (let i = 0; i < count; i++) {
      const port = this.next;
      this.next = port >= this.max ? this.min : port + 1;
      const server = createServer({ pauseOnConnect: true });
      const ok = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen({ port, host: this.host, exclusive: true }, () => resolve(true));
      });
      if (ok) {
        server.removeAllListeners('error');
        return server;
      }
      server.close();
    }
    throw new AppError('unavailable', 'No passive port is free; try again shortly');
  }
}

/**
 * PASV/EPSV: a one-shot listener on a port of the range. The first connection from the client's own
 * address is taken and the listener closes; connections from any other address are dropped and
 * logged (they may be an attempt to steal the transfer) without disturbing the client's session.
 */
export class PassiveChannel implements DataChannel {
  readonly kind = 'passive';
  private socket: Socket | null = null;
  private waiters: { resolve: (s: Socket) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  private timer: NodeJS.Timeout;
  private readonly server: Server;

  private constructor(
    private readonly lease: PassiveLease,
    private readonly options: ChannelOptions,
  ) {
    const server = (this.server = lease.server);
    this.port = (server.address() as { port: number }).port;
    server.on('connection', (socket: Socket) => this.accept(socket));
    server.on('error', (err) => this.fail(new AppError('unavailable', 'The data connection failed', { cause: err })));
    this.timer = setTimeout(() => this.fail(new AppError('unavailable', 'No data connection was made in time')), options.acceptTimeoutMs ?? options.connectTimeoutMs);
    this.timer.unref();
  }

  /** Listens for the client at `options.clientIp`, within that address's share of the range. */
  static async open(ports: PassivePorts, options: ChannelOptions): Promise<PassiveChannel> {
    return new PassiveChannel(await ports.listen(options.clientIp), options);
  }

  /** Stops listening: the port goes back to the range and to the address's share. */
  private stopListening() {
    clearTimeout(this.timer);
    this.server.close();
    this.lease.release();
  }

  /** The listening port (kept: the listener closes as soon as the client is connected). */
  readonly port: number;

  private accept(socket: Socket) {
    const from = normalizeIp(socket.remoteAddress);
    if (this.socket || this.failure || from !== this.options.clientIp) {
      if (from !== this.options.clientIp) {
        this.options.log.warn({ from, client: this.options.clientIp, port: this.port }, 'refused a data connection from another address than the client');
      }
      socket.destroy();
      return;
    }
    this.stopListening();
    // Errors show up where the socket is used (the transfer fails); a reset before then must not throw.
    socket.on('error', () => undefined);
    this.socket = socket;
    for (const w of this.waiters.splice(0)) w.resolve(socket);
  }

  private fail(err: Error) {
    if (this.socket) return;
    this.failure ??= err;
    this.stopListening();
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
  }

  connect(): Promise<Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  secure(socket: Socket): Promise<Socket> {
    return secure(socket, this.options.tls, this.options.connectTimeoutMs);
  }

  close() {
    this.fail(new AppError('unavailable', 'Data connection closed'));
    this.socket?.destroy();
  }
}

/**
 * PORT/EPRT: we connect to the client when the transfer starts. Only the client's own address is
 * accepted (no FTP bounce), and only unprivileged ports.
 */
export class ActiveChannel implements DataChannel {
  readonly kind = 'active';
  private socket: Socket | null = null;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly options: ChannelOptions,
  ) {}

  /** Parses `h1,h2,h3,h4,p1,p2` (PORT) or `|1|addr|port|` / `|2|addr|port|` (EPRT). */
  static parse(directive: 'PORT' | 'EPRT', arg: string | null): { host: string; port: number } {
    const bad = () => new AppError('bad_input', `Illegal ${directive} command`);
    if (!arg) throw bad();
    if (directive === 'PORT') {
      const parts = arg.trim().split(',');
      if (parts.length !== 6 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) throw bad();
      const n = parts.map(Number);
      return { host: n.slice(0, 4).join('.'), port: n[4]! * 256 + n[5]! };
    }
    const d = arg.trim()[0];
    if (!d) throw bad();
    const fields = arg.trim().split(d);
    if (fields.length !== 5 || fields[0] !== '' || fields[4] !== '') throw bad();
    const [, proto, host, port] = fields as [string, string, string, string];
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw bad();
    if (proto === '1' && !isIPv4(host)) throw bad();
    if (proto !== '1' && proto !== '2') throw new FtpRefusal(522, 'Network protocol not supported, use (1,2)');
    return { host, port: Number(port) };
  }

  /** Refuses any address but the client's and privileged ports. */
  static check(target: { host: string; port: number }, clientIp: string): void {
    if (normalizeIp(target.host) !== clientIp) throw new AppError('bad_input', 'Illegal PORT: data connections go only to your own address');
    if (target.port < 1024) throw new AppError('bad_input', 'Illegal PORT: use a port of 1024 or above');
  }

  connect(): Promise<Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new AppError('unavailable', 'Could not open the data connection in time'));
      }, this.options.connectTimeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new AppError('unavailable', 'Could not open the data connection', { cause: err }));
      });
      socket.connect({ host: this.host, port: this.port }, () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        this.socket = socket;
        resolve(socket);
      });
    });
  }

  secure(socket: Socket): Promise<Socket> {
    return secure(socket, this.options.tls, this.options.connectTimeoutMs);
  }

  close() {
    this.socket?.destroy();
  }
}
