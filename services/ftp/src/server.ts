import type { Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { AuthService } from '@nondivy/auth';
import type { FtpConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import type { Library, ResumableUploads } from '@nondivy/storage';
import { normalizeIp, PassivePorts } from './data-channel.js';
import { startFtpSrv, type CommandSpec } from './ftp-srv-adapter.js';
import { FtpSession, type SessionContext } from './session.js';

/**
 * Our handlers for every command that touches files, logins or data connections. ftp-srv keeps the
 * protocol plumbing (greeting, reply formatting, TYPE/MODE/STRU/NOOP/OPTS/HELP...); the library,
 * the checks and the transfers are ours.
 */
const COMMANDS: CommandSpec<FtpSession>[] = [
  { directives: ['USER'], run: (x, arg) => x.user(arg), noAuth: true },
  { directives: ['PASS'], run: (x, arg) => x.pass(arg), noAuth: true },
  { directives: ['FEAT'], run: (x) => x.feat(), noAuth: true },
  { directives: ['AUTH'], run: (x, arg) => x.authTls(arg), noAuth: true },
  { directives: ['STAT'], run: (x) => x.stat(), noAuth: true },
  { directives: ['PWD', 'XPWD'], run: (x) => x.pwd() },
  { directives: ['CWD', 'XCWD'], run: (x, arg) => x.cwdTo(arg) },
  { directives: ['CDUP', 'XCUP'], run: (x) => x.cwdTo('..') },
  { directives: ['MKD', 'XMKD'], run: (x, arg) => x.mkd(arg) },
  { directives: ['RMD', 'XRMD'], run: (x, arg) => x.rmd(arg) },
  { directives: ['LIST'], run: (x, arg) => x.list('LIST', arg) },
  { directives: ['NLST'], run: (x, arg) => x.list('NLST', arg) },
  { directives: ['MLSD'], run: (x, arg) => x.list('MLSD', arg) },
  { directives: ['MLST'], run: (x, arg) => x.mlst(arg) },
  { directives: ['SIZE'], run: (x, arg) => x.size(arg) },
  { directives: ['MDTM'], run: (x, arg) => x.mdtm(arg) },
  { directives: ['REST'], run: (x, arg) => x.restAt(arg) },
  { directives: ['RETR'], run: (x, arg) => x.retr(arg) },
  { directives: ['STOR'], run: (x, arg) => x.stor('STOR', arg) },
  { directives: ['APPE'], run: (x, arg) => x.stor('APPE', arg) },
  { directives: ['STOU'], run: (x, arg) => x.stor('STOU', arg) },
  { directives: ['DELE'], run: (x, arg) => x.dele(arg) },
  { directives: ['RNFR'], run: (x, arg) => x.rnfr(arg) },
  { directives: ['RNTO'], run: (x, arg) => x.rnto(arg) },
  { directives: ['PASV'], run: (x) => x.pasv(false) },
  { directives: ['EPSV'], run: (x) => x.pasv(true) },
  { directives: ['PORT'], run: (x, arg) => x.port('PORT', arg) },
  { directives: ['EPRT'], run: (x, arg) => x.port('EPRT', arg) },
  { directives: ['ABOR'], run: (x) => x.conn.reply(225, 'No transfer to abort'), noAuth: true },
  { directives: ['MFMT'], run: (x, arg) => x.mfmt(arg) },
  { directives: ['SITE'], run: (x, arg) => x.site(arg) },
];

/** Clients send these before logging in (basic-ftp: OPTS UTF8 ON; many: SYST). */
const NO_AUTH_BUILTINS = ['OPTS', 'SYST'];

export interface FtpDeps {
  library: Library;
  /** Where an interrupted STOR is kept, and REST + STOR and APPE continue it. */
  uploads: ResumableUploads;
  auth: AuthService;
  log: Logger;
}

export interface FtpFrontDoor {
  /** The port the control connection listens on. */
  port: number;
  /** Stops accepting, lets running transfers finish for up to `graceMs`, then ends every session. */
  close(graceMs?: number): Promise<void>;
  /** Open sessions (for metrics and tests). */
  sessions(): number;
}

/**
 * The FTP front door onto the library, on ftp-srv with what it lacks: connection caps (global and
 * per address), an idle timeout, login throttling shared with REST, safe replies, data connections
 * only with the client's own address, graceful shutdown with the rest of the process.
 */
export async function startFtp(config: FtpConfig['ftp'] & { maxUploadBytes: number; siteName: string }, deps: FtpDeps): Promise<FtpFrontDoor> {
  const { log } = deps;
  const tlsOptions = config.tls ? { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) } : undefined;
  let closing = false;
  const ctx: SessionContext = {
    library: deps.library,
    uploads: deps.uploads,
    auth: deps.auth,
    log,
    ports: new PassivePorts(config.pasvMin, config.pasvMax, config.host, config.pasvPerIp),
    pasvAddress: config.pasvAddress,
    tls: tlsOptions ? createSecureContext(tlsOptions) : undefined,
    tlsRequired: config.tlsRequired,
    idleMs: config.idleMs,
    dataTimeoutMs: config.dataTimeoutMs,
    // A passive port waits for its data connection no longer than a transfer may stall either.
    pasvTimeoutMs: Math.min(config.pasvTimeoutMs, config.dataTimeoutMs),
    maxUploadBytes: config.maxUploadBytes,
    siteName: config.siteName,
    closing: () => closing,
  };

  // Connection caps, before ftp-srv sees the socket.
  const perIp = new Map<string, number>();
  let open = 0;
  const admit = (socket: Socket): boolean => {
    const ip = normalizeIp(socket.remoteAddress);
    socket.on('error', () => undefined);
    const refuse = (why: string) => {
      log.warn({ client: ip, open, fromClient: perIp.get(ip) ?? 0 }, why);
      socket.end(`421 ${why}; try again later\r\n`);
      setTimeout(() => socket.destroy(), 2000).unref();
      return false;
    };
    if (closing) return refuse('Service shutting down');
    if (open >= config.maxConnections) return refuse('Too many connections to this server');
    if ((perIp.get(ip) ?? 0) >= config.maxConnectionsPerIp) return refuse('Too many connections from your address');
    open++;
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    socket.once('close', () => {
      open--;
      const n = (perIp.get(ip) ?? 1) - 1;
      if (n <= 0) perIp.delete(ip);
      else perIp.set(ip, n);
    });
    return true;
  };

  const live = new Set<FtpSession>();
  const ftp = await startFtpSrv<FtpSession>({
    host: config.host,
    port: config.port,
    pasvAddress: config.pasvAddress,
    tls: tlsOptions,
    greeting: `${config.siteName}: the Nondivy library over FTP. Log in as anonymous to browse and download.`,
    log,
    commands: COMMANDS,
    noAuth: NO_AUTH_BUILTINS,
    admit,
    session: (conn, dispatch) => {
      const session = new FtpSession(conn, ctx, dispatch);
      live.add(session);
      conn.socket.once('close', () => void session.settled().then(() => live.delete(session)));
      return session;
    },
  });
  const port = ftp.port;
  log.info({ host: config.host, port, passive: `${config.pasvMin}-${config.pasvMax}`, pasvPerIp: config.pasvPerIp, pasvTimeoutMs: config.pasvTimeoutMs, tls: !!tlsOptions, tlsRequired: config.tlsRequired }, 'FTP listening');

  return {
    port,
    sessions: () => live.size,
    close: async (graceMs = 5000) => {
      closing = true;
      const stopped = ftp.stopListening();
      const deadline = Date.now() + graceMs;
      while ([...live].some((s) => s.transferring) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // Transfers still running are stopped; wait (bounded) until each has removed what it wrote.
      await Promise.all([...live].map((s) => s.shutdown()));
      await Promise.race([Promise.all([...live].map((s) => s.settled())), new Promise((r) => setTimeout(r, 5000).unref())]);
      ftp.destroyConnections();
      await stopped;
      log.info('FTP stopped');
    },
  };
}
