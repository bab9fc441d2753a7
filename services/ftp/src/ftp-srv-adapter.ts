/**
 * Every contact with ftp-srv (pinned to 4.6.3) lives in this file, behind typed interfaces: the
 * rest of the FTP door sees a `ControlConnection` and a command table, never ftp-srv's objects.
 * Upgrading ftp-srv is this file's work.
 *
 * What ftp-srv gives through its public API: the server (`new FtpSrv(options)`, `listen`, the
 * `connect` and `server-error` events), the greeting, reply formatting (`connection.reply`), and
 * the commands we do not replace (TYPE, MODE, STRU, NOOP, OPTS, HELP, SYST, QUIT...).
 *
 * What is borrowed from its internals, and why:
 * - `ftp-srv/src/commands/registry` (a private module): our handlers for every command that touches
 *   files, logins or data connections are written into it, because ftp-srv has no public way to
 *   replace a command and looks them up in this one module-level registry. Entries keep its shape
 *   (`directive`, `handler` called with the connection as `this`, `syntax`, `description`, `flags`).
 * - `connection.commands.handle(command)`: the dispatcher, called with a command we parsed, because
 *   we read the control channel ourselves (ftp-srv splits each TCP segment on CRLF as it comes, with
 *   no length cap): ftp-srv's `data` listener on `connection.commandSocket` is removed.
 * - `connection.commandSocket` and `connection.secure` are written on AUTH TLS, so that ftp-srv's
 *   replies go out through the TLS socket; `connection.authenticated` is set on login, because its
 *   dispatcher refuses commands without `no_auth` until then.
 * - `ftpSrv.server` (its net.Server): our connection caps run before ftp-srv sees a socket, by
 *   wrapping its `connection` listener; the port comes from `server.address()`.
 * - `ftpSrv.connections`: every control socket is destroyed at the end of a shutdown.
 * - The constructor installs SIGTERM/SIGINT/SIGQUIT handlers that exit the process: they are removed
 *   so that the process's own graceful shutdown stays in charge.
 */
import { createRequire } from 'node:module';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@nondivy/log';

const require = createRequire(import.meta.url);

/** A reply line that goes out without the code (the inner lines of a multi-line reply). */
export interface RawLine {
  raw: true;
  message: string;
}

/** The control connection as a session sees it. */
export interface ControlConnection {
  /** The control socket (the TLS socket once AUTH TLS succeeded). */
  readonly socket: Socket;
  readonly secure: boolean;
  /** One line per message, formatted by ftp-srv; `raw` lines go out without the code. */
  reply(code: number, ...messages: (string | RawLine)[]): PromiseLike<unknown>;
  /** Lets commands that need a login through ftp-srv's dispatcher from now on. */
  markAuthenticated(): void;
  /** The control connection continues over `secure` (AUTH TLS); replies go through it. */
  upgrade(secure: TLSSocket): void;
}

/** Our handling of some commands: `run` gets the connection's session and the argument verbatim. */
export interface CommandSpec<S> {
  directives: string[];
  run(session: S, arg: string | null): unknown;
  /** Allowed before login. */
  noAuth?: boolean;
}

export interface FtpSrvOptions<S> {
  host: string;
  port: number;
  pasvAddress?: string;
  tls?: { cert: Buffer; key: Buffer };
  greeting: string;
  log: Logger;
  commands: CommandSpec<S>[];
  /** Directives of ftp-srv's own commands that clients send before logging in. */
  noAuth: string[];
  /** Decides on a new socket before ftp-srv sees it; a refused socket is answered and closed by `admit`. */
  admit(socket: Socket): boolean;
  /** Builds the session of a new control connection; its lines go to ftp-srv's dispatcher with `dispatch`. */
  session(conn: ControlConnection, dispatch: (line: string) => Promise<unknown>): S;
}

export interface FtpSrvHandle {
  port: number;
  /** Stops accepting connections; resolves once the listening socket is closed (after every connection ended). */
  stopListening(): Promise<void>;
  /** Destroys every control socket still open. */
  destroyConnections(): void;
}

// ---- ftp-srv's shapes (its types are `any`) -----------------------------------------------------

interface SrvCommand {
  directive: string;
  arg: string | null;
  flags: string[];
  raw: string;
}
interface SrvConnection {
  commandSocket: Socket;
  secure: boolean;
  authenticated: boolean;
  reply(code: number, ...messages: (string | RawLine)[]): PromiseLike<unknown>;
  commands: { handle(command: SrvCommand): Promise<unknown> };
  /** Ours: the session, for the registry's handlers. */
  nondivySession?: unknown;
}
interface SrvInstance {
  server: Server;
  connections: Record<string, SrvConnection>;
  on(event: 'connect', listener: (e: { connection: SrvConnection }) => void): void;
  on(event: 'client-error' | 'server-error', listener: (e: { error: Error }) => void): void;
  listen(): Promise<unknown>;
}
type SrvClass = new (options: Record<string, unknown>) => SrvInstance;
interface RegistryEntry {
  directive: string | string[];
  handler: (this: SrvConnection, args: { command: SrvCommand }) => unknown;
  syntax: string;
  description: string;
  flags?: { no_auth?: boolean; feat?: string };
}

let installed = false;

/** Writes our commands into ftp-srv's module-level registry, once per process. */
function installCommands<S>(commands: CommandSpec<S>[], noAuth: string[]) {
  if (installed) return;
  installed = true;
  const registry = require('ftp-srv/src/commands/registry') as Record<string, RegistryEntry>;
  for (const d of noAuth) if (registry[d]) registry[d] = { ...registry[d]!, flags: { ...registry[d]!.flags, no_auth: true } };
  for (const spec of commands) {
    const entry: RegistryEntry = {
      directive: spec.directives,
      handler({ command }) {
        return spec.run(this.nondivySession as S, command.arg);
      },
      syntax: '{{cmd}}',
      description: registry[spec.directives[0]!]?.description ?? spec.directives[0]!,
      flags: spec.noAuth ? { no_auth: true } : {},
    };
    for (const d of spec.directives) registry[d] = entry;
  }
}

/** `CMD arg with spaces "and quotes"` → the command object ftp-srv's dispatcher takes (arg verbatim). */
function parseCommand(line: string): SrvCommand {
  const trimmed = line.replace(/^\s+/, '');
  const space = trimmed.indexOf(' ');
  const directive = (space === -1 ? trimmed : trimmed.slice(0, space)).toUpperCase();
  const arg = space === -1 ? null : trimmed.slice(space + 1);
  return { directive, arg: arg === '' ? null : arg, flags: [], raw: line };
}

function controlConnection(c: SrvConnection): ControlConnection {
  return {
    get socket() {
      return c.commandSocket;
    },
    get secure() {
      return c.secure;
    },
    reply: (code, ...messages) => c.reply(code, ...messages),
    markAuthenticated: () => {
      c.authenticated = true;
    },
    upgrade: (secure) => {
      c.commandSocket = secure;
      c.secure = true;
    },
  };
}

/** Starts ftp-srv with our commands, our connection admission and our sessions, and listens. */
export async function startFtpSrv<S>(options: FtpSrvOptions<S>): Promise<FtpSrvHandle> {
  const FtpSrv = require('ftp-srv') as SrvClass;
  installCommands(options.commands, options.noAuth);
  const { log } = options;

  const before = new Map((['SIGTERM', 'SIGINT', 'SIGQUIT'] as const).map((sig) => [sig, new Set(process.listeners(sig))]));
  const ftp = new FtpSrv({
    url: `ftp://${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`,
    pasv_url: options.pasvAddress ?? '127.0.0.1',
    anonymous: false,
    greeting: [options.greeting],
    tls: options.tls ?? false,
    timeout: 0,
    log: log.child({ component: 'ftp-srv' }, { level: ['debug', 'trace'].includes(log.level) ? log.level : 'silent' }),
  });
  for (const [sig, had] of before) for (const l of process.listeners(sig)) if (!had.has(l)) process.removeListener(sig, l as () => void);

  // Admission before ftp-srv sees the socket (it is paused until then).
  const [original] = ftp.server.listeners('connection') as ((s: Socket) => void)[];
  ftp.server.removeAllListeners('connection');
  ftp.server.on('connection', (socket: Socket) => {
    if (options.admit(socket)) original!.call(ftp.server, socket);
  });

  ftp.on('connect', ({ connection }) => {
    // We read the control channel ourselves (see the header).
    connection.commandSocket.removeAllListeners('data');
    connection.nondivySession = options.session(controlConnection(connection), (line) => connection.commands.handle(parseCommand(line)));
  });
  ftp.on('server-error', ({ error }) => log.error({ err: error }, 'FTP server error'));

  await ftp.listen();
  return {
    port: (ftp.server.address() as { port: number }).port,
    stopListening: () => new Promise<void>((resolve) => ftp.server.close(() => resolve())),
    destroyConnections: () => {
      for (const c of Object.values(ftp.connections)) c.commandSocket.destroy();
    },
  };
}
