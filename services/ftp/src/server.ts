import { createRequire } from 'node:module';
import type { Server, Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { AuthService } from '@nondivy/auth';
import type { FtpConfig } from '@nondivy/config';
import type { Logger } from '@nondivy/log';
import type { Library } from '@nondivy/storage';
import { normalizeIp, PassivePorts } from './data-channel.js';
import { FtpSession, type FtpSrvConnection, type SessionContext } from './session.js';

const require = createRequire(import.meta.url);

interface FtpSrvInstance {
  server: Server;
  connections: Record<string, FtpSrvConnection & { session?: FtpSession }>;
  on(event: 'connect', listener: (e: { connection: FtpSrvConnection & { session?: FtpSession; commands: { handle(c: unknown): Promise<unknown> } } }) => void): void;
  on(event: 'client-error' | 'server-error', listener: (e: { error: Error }) => void): void;
  listen(): Promise<unknown>;
}
type FtpSrvClass = new (options: Record<string, unknown>) => FtpSrvInstance;

interface Command {
  directive: string;
  arg: string | null;
  flags: string[];
  raw: string;
}
type Handler = (this: FtpSrvConnection & { session: FtpSession }, args: { command: Command }) => unknown;
interface RegistryEntry {
  directive: string | string[];
  handler: Handler;
  syntax: string;
  description: string;
  flags?: { no_auth?: boolean; feat?: string };
}

/**
 * Our handlers for every command that touches files, logins or data connections. ftp-srv keeps the
 * protocol plumbing (greeting, reply formatting, AUTH TLS, TYPE/MODE/STRU/NOOP/OPTS/HELP...); the
 * library, the checks and the transfers are ours. ftp-srv looks commands up in one module-level
 * registry, so they are installed there, once per process.
 */
function installCommands(registry: Record<string, RegistryEntry>) {
  const s = function (this: { session: FtpSession }) {
    return this.session;
  };
  const def = (directives: string[], handler: (session: FtpSession, command: Command) => unknown, noAuth = false) => {
    const entry: RegistryEntry = {
      directive: directives,
      handler(this, { command }) {
        return handler(s.call(this), command);
      },
      syntax: `{{cmd}}`,
      description: registry[directives[0]!]?.description ?? directives[0]!,
      flags: noAuth ? { no_auth: true } : {},
    };
    for (const d of directives) registry[d] = entry;
  };
  // Clients send these before logging in (basic-ftp: OPTS UTF8 ON; many: SYST).
  for (const d of ['OPTS', 'SYST']) if (registry[d]) registry[d] = { ...registry[d]!, flags: { ...registry[d]!.flags, no_auth: true } };
  def(['USER'], (x, c) => x.user(c.arg), true);
  def(['PASS'], (x, c) => x.pass(c.arg), true);
  def(['FEAT'], (x) => x.feat(), true);
  def(['AUTH'], (x, c) => x.authTls(c.arg), true);
  def(['STAT'], (x) => x.stat(), true);
  def(['PWD', 'XPWD'], (x) => x.pwd());
  def(['CWD', 'XCWD'], (x, c) => x.cwdTo(c.arg));
  def(['CDUP', 'XCUP'], (x) => x.cwdTo('..'));
  def(['MKD', 'XMKD', 'RMD', 'XRMD'], (x) => x.mkd());
  def(['LIST'], (x, c) => x.list('LIST', c.arg));
  def(['NLST'], (x, c) => x.list('NLST', c.arg));
  def(['MLSD'], (x, c) => x.list('MLSD', c.arg));
  def(['MLST'], (x, c) => x.mlst(c.arg));
  def(['SIZE'], (x, c) => x.size(c.arg));
  def(['MDTM'], (x, c) => x.mdtm(c.arg));
  def(['REST'], (x, c) => x.restAt(c.arg));
  def(['RETR'], (x, c) => x.retr(c.arg));
  def(['STOR'], (x, c) => x.stor('STOR', c.arg));
  def(['APPE'], (x, c) => x.stor('APPE', c.arg));
  def(['STOU'], (x, c) => x.stor('STOU', c.arg));
  def(['DELE'], (x, c) => x.dele(c.arg));
  def(['RNFR'], (x, c) => x.rnfr(c.arg));
  def(['RNTO'], (x, c) => x.rnto(c.arg));
  def(['PASV'], (x) => x.pasv(false));
  def(['EPSV'], (x) => x.pasv(true));
  def(['PORT'], (x, c) => x.port('PORT', c.arg));
  def(['EPRT'], (x, c) => x.port('EPRT', c.arg));
  def(['ABOR'], (x) => x.conn.reply(225, 'No transfer to abort'), true);
  def(['SITE'], (x) => x.conn.reply(502, 'SITE commands are not available'));
}

let installed = false;

/** `CMD arg with spaces "and quotes"` → the command object ftp-srv's dispatcher takes (arg verbatim). */
function parseCommand(line: string): Command {
  const trimmed = line.replace(/^\s+/, '');
  const space = trimmed.indexOf(' ');
  const directive = (space === -1 ? trimmed : trimmed.slice(0, space)).toUpperCase();
  const arg = space === -1 ? null : trimmed.slice(space + 1);
  return { directive, arg: arg === '' ? null : arg, flags: [], raw: line };
}

export interface FtpDeps {
  library: Library;
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
  const FtpSrv = require('ftp-srv') as FtpSrvClass;
  if (!installed) {
    installCommands(require('ftp-srv/src/commands/registry') as Record<string, RegistryEntry>);
    installed = true;
  }
  const { log } = deps;
  const tlsOptions = config.tls ? { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) } : undefined;
  let closing = false;
  const ctx: SessionContext = {
    library: deps.library,
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

  // ftp-srv installs SIGTERM/SIGINT/SIGQUIT handlers that exit the process: the process's own
  // shutdown (which closes this server among the rest) stays in charge instead.
  const before = new Map((['SIGTERM', 'SIGINT', 'SIGQUIT'] as const).map((sig) => [sig, new Set(process.listeners(sig))]));
  const ftp = new FtpSrv({
    url: `ftp://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`,
    pasv_url: config.pasvAddress ?? '127.0.0.1',
    anonymous: false,
    greeting: [`${config.siteName}: the Nondivy library over FTP. Log in as anonymous to browse and download.`],
    tls: tlsOptions ?? false,
    timeout: 0,
    log: log.child({ component: 'ftp-srv' }, { level: ['debug', 'trace'].includes(log.level) ? log.level : 'silent' }),
  });
  for (const [sig, had] of before) for (const l of process.listeners(sig)) if (!had.has(l)) process.removeListener(sig, l as () => void);

  // Connection caps, before ftp-srv sees the socket (it is paused until then).
  const perIp = new Map<string, number>();
  let open = 0;
  const [original] = ftp.server.listeners('connection') as ((s: Socket) => void)[];
  ftp.server.removeAllListeners('connection');
  ftp.server.on('connection', (socket: Socket) => {
    const ip = normalizeIp(socket.remoteAddress);
    socket.on('error', () => undefined);
    const refuse = (why: string) => {
      log.warn({ client: ip, open, fromClient: perIp.get(ip) ?? 0 }, why);
      socket.end(`421 ${why}; try again later\r\n`);
      setTimeout(() => socket.destroy(), 2000).unref();
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
    original!.call(ftp.server, socket);
  });

  const live = new Set<FtpSession>();
  ftp.on('connect', ({ connection }) => {
    const session = new FtpSession(connection, ctx, (line) => connection.commands.handle(parseCommand(line)));
    connection.session = session;
    live.add(session);
    connection.commandSocket.once('close', () => void session.settled().then(() => live.delete(session)));
  });
  ftp.on('server-error', ({ error }) => log.error({ err: error }, 'FTP server error'));

  await ftp.listen();
  const port = (ftp.server.address() as { port: number }).port;
  log.info({ host: config.host, port, passive: `${config.pasvMin}-${config.pasvMax}`, pasvPerIp: config.pasvPerIp, pasvTimeoutMs: config.pasvTimeoutMs, tls: !!tlsOptions, tlsRequired: config.tlsRequired }, 'FTP listening');

  return {
    port,
    sessions: () => live.size,
    close: async (graceMs = 5000) => {
      closing = true;
      const stopped = new Promise<void>((resolve) => ftp.server.close(() => resolve()));
      const deadline = Date.now() + graceMs;
      while ([...live].some((s) => s.transferring) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // Transfers still running are stopped; wait (bounded) until each has removed what it wrote.
      await Promise.all([...live].map((s) => s.shutdown()));
      await Promise.race([Promise.all([...live].map((s) => s.settled())), new Promise((r) => setTimeout(r, 5000).unref())]);
      for (const c of Object.values(ftp.connections)) c.commandSocket.destroy();
      await stopped;
      log.info('FTP stopped');
    },
  };
}
