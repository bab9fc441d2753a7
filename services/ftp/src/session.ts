import type { Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { finished } from 'node:stream/promises';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { AuthService } from '@nondivy/auth';
import type { Item, ItemKind, ItemPatch } from '@nondivy/contracts';
import { AppError, isAppError } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import { socketChunks } from '@nondivy/runtime';
import {
  requireAcceptedFilename,
  requireAcceptedFolder,
  titleFromFilename,
  UploadLockedError,
  whenDrained,
  type Actor,
  type Library,
  type ReceiveFrom,
  type ResumableUploads,
  type UploadPlace,
} from '@nondivy/storage';
import { ActiveChannel, normalizeIp, PassiveChannel, type DataChannel, type PassivePorts } from './data-channel.js';
import type { ControlConnection } from './ftp-srv-adapter.js';
import { folderEntry, ftpTime, itemEntry, itemTime, lsLine, mlsxLine, parseFtpTime, type Entry } from './listing.js';
import { entryPath, folderOf, foldersOnTheWay, isFixedFolder, kindFolderPath, quotePath, resolvePath, subfolders, type FixedFolder, type VirtualPath } from './paths.js';
import { FtpRefusal, replyFor } from './replies.js';

/** What every session of one server shares. */
export interface SessionContext {
  library: Library;
  /** A member's interrupted STOR of a new file is kept here; REST + STOR and APPE continue it. */
  uploads: ResumableUploads;
  auth: AuthService;
  log: Logger;
  ports: PassivePorts;
  /** Announced in PASV replies to clients that are not on this machine; default: our local address. */
  pasvAddress?: string;
  tls?: SecureContext;
  tlsRequired: boolean;
  idleMs: number;
  dataTimeoutMs: number;
  /** How long a PASV/EPSV listener waits for the client's data connection before its port is freed. */
  pasvTimeoutMs: number;
  maxUploadBytes: number;
  siteName: string;
  /** True once the server is shutting down: no new transfers. */
  closing(): boolean;
}

interface Transfer {
  /** Stops the transfer: its handler then replies 426 and cleans up. */
  abort(reason: string): void;
  bytes(): number;
}

/** What is at a path of the tree (see `FtpSession.place`). */
type FolderPlace = { is: 'folder'; path: string; kind: ItemKind; folder: string };
type FilePlace = { is: 'file'; path: string; kind: ItemKind; folder: string; name: string; item: Item };
type Place = { is: 'fixed'; path: string; at: FixedFolder } | FolderPlace | FilePlace | { is: 'missing'; path: string };

/** The longest command line taken (without its CRLF); RFC 959 lines are far shorter. */
const MAX_LINE_BYTES = 8 * 1024;
const MAX_QUEUED_COMMANDS = 32;
/** How many of a member's latest items /upload/ lists (and resolves names among). */
export const UPLOAD_LISTING_MAX = 1000;
/** Queued in place of an over-long line: refused in its turn, after the commands sent before it. */
const TOO_LONG = Symbol('line too long');
/** Commands answered at once even while a transfer runs (RFC 959: ABOR, STAT, QUIT). */
const URGENT = new Set(['ABOR', 'STAT', 'QUIT', 'NOOP']);

/**
 * One FTP control connection: who is logged in, the working folder, the pending data channel, the
 * running transfer, the idle timer. Commands are read here (not by ftp-srv): lines are reassembled
 * across TCP segments, length-capped, queued and run one at a time, except ABOR/STAT/QUIT/NOOP,
 * which are answered while a transfer runs so a client can stop it.
 */
export class FtpSession {
  actor: Actor | null = null;
  username: string | null = null;
  loggedIn = false;
  cwd = '/';
  rest = 0;
  renameFrom: FilePlace | FolderPlace | null = null;
  private channel: DataChannel | null = null;
  private transfer: Transfer | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private pending: Buffer = Buffer.alloc(0);
  private queue: (string | typeof TOO_LONG)[] = [];
  private running = false;
  private closed = false;
  /** Set once an over-long line came: nothing more is read from this connection. */
  private refused = false;
  /** Set once the client ended the control connection (it may not be closed yet). */
  private peerEnded = false;
  readonly ip: string;
  readonly log: Logger;

  constructor(
    readonly conn: ControlConnection,
    private readonly ctx: SessionContext,
    private readonly dispatch: (line: string) => Promise<unknown>,
  ) {
    this.ip = normalizeIp(conn.socket.remoteAddress);
    this.log = ctx.log.child({ client: this.ip });
    const socket = conn.socket;
    // The control channel is read here, line by line with a length cap (see onData).
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.once('close', () => this.onClose());
    // The client's end of the control connection (FIN) comes before its close: a client that died
    // closes its data connection and this one at the same moment.
    socket.once('end', () => (this.peerEnded = true));
    this.armIdle();
  }

  get transferring(): boolean {
    return this.transfer !== null;
  }

  private transferDone: (() => void)[] = [];

  /** Resolves once no transfer runs (a stopped transfer has cleaned up what it wrote by then). */
  settled(): Promise<void> {
    if (!this.transfer) return Promise.resolve();
    return new Promise((resolve) => this.transferDone.push(resolve));
  }

  // ---- control channel -------------------------------------------------------------------------

  /**
   * Splits what arrives into lines. The length cap holds for every line however it came: whole in
   * one segment, several in one segment, or in pieces (the unfinished rest is capped too, with room
   * for its CR). An over-long line is never run nor echoed: the commands before it are answered,
   * then 500 and the connection closes, and nothing after it is read.
   */
  private onData(chunk: Buffer) {
    if (this.closed || this.refused) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let nl: number;
    while ((nl = this.pending.indexOf(0x0a)) !== -1) {
      let line = this.pending.subarray(0, nl);
      this.pending = this.pending.subarray(nl + 1);
      if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
      if (line.length > MAX_LINE_BYTES) return this.refuseLine();
      this.onLine(stripTelnet(line).toString('utf8'));
      if (this.closed) return;
    }
    if (this.pending.length > MAX_LINE_BYTES + 1) this.refuseLine();
  }

  private refuseLine() {
    this.refused = true;
    this.pending = Buffer.alloc(0);
    this.log.warn({ maxBytes: MAX_LINE_BYTES }, 'refused an FTP command line over the length cap');
    this.queue.push(TOO_LONG);
    void this.drain();
  }

  private onLine(line: string) {
    if (!line.trim()) return;
    this.armIdle();
    const directive = line.trim().split(' ', 1)[0]!.toUpperCase();
    if (this.transfer && URGENT.has(directive)) {
      if (directive === 'ABOR') return this.transfer.abort('ABOR');
      if (directive === 'STAT') return void this.conn.reply(213, `Transfer in progress: ${this.transfer.bytes()} bytes so far`);
      if (directive === 'NOOP') return void this.conn.reply(200, 'NOOP ok');
      this.transfer.abort('QUIT');
      return void this.closeWith(221, 'Goodbye');
    }
    if (this.queue.length >= MAX_QUEUED_COMMANDS) {
      void this.closeWith(421, 'Too many commands sent at once');
      return;
    }
    this.queue.push(line);
    void this.drain();
  }

  private async drain() {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length && !this.closed) {
        const line = this.queue.shift()!;
        if (line === TOO_LONG) {
          await this.closeWith(500, `Command line too long (more than ${MAX_LINE_BYTES} bytes)`);
          break;
        }
        try {
          await this.dispatch(line);
        } catch (err) {
          await this.fail(err);
        }
        this.armIdle();
      }
    } finally {
      this.running = false;
    }
  }

  /** (Re)starts the idle timer; it does not run while a transfer does (the data timeout covers that). */
  armIdle() {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.closed || this.transfer) return;
    this.idleTimer = setTimeout(() => {
      this.log.info({ user: this.username }, 'closing an idle FTP connection');
      void this.closeWith(421, 'Idle timeout: closing the control connection');
    }, this.ctx.idleMs);
    this.idleTimer.unref();
  }

  /** Replies (when the socket still takes it) and closes the control connection. */
  async closeWith(code: number, message: string) {
    if (this.closed) return;
    const socket = this.conn.socket;
    try {
      if (socket.writable) await Promise.race([this.conn.reply(code, message), new Promise((r) => setTimeout(r, 1000))]);
    } finally {
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
      this.onClose();
    }
  }

  private onClose() {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.transfer?.abort('control connection closed');
    this.channel?.close();
    this.channel = null;
    this.queue = [];
  }

  /** Ends the session for a server shutdown: stops any transfer (nothing half-done is kept). */
  shutdown(): Promise<void> {
    this.transfer?.abort('server shutting down');
    return this.closeWith(421, 'Service shutting down; please reconnect later');
  }

  /** Replies to a failure with a safe message (see `replyFor`); what is not explained is logged in full. */
  async fail(err: unknown): Promise<void> {
    if (!isAppError(err) || err.kind === 'internal') this.log.error({ err }, 'FTP command failed');
    const { code, message } = replyFor(err);
    await this.conn.reply(code, message);
  }

  /**
   * AUTH TLS: the 234 reply and the switch to TLS happen in the same tick, so the client's first TLS
   * bytes (sent once it reads 234) can only reach the TLS socket, never the command reader.
   */
  authTls(arg: string | null) {
    if (!this.ctx.tls) return this.conn.reply(502, 'TLS is not configured on this server');
    const mech = (arg ?? '').trim().toUpperCase();
    if (mech !== 'TLS' && mech !== 'SSL' && mech !== 'TLS-C') return this.conn.reply(504, 'Use AUTH TLS');
    if (this.conn.secure) return this.conn.reply(503, 'TLS is already on');
    const raw = this.conn.socket;
    raw.write('234 AUTH TLS successful: start the TLS handshake\r\n');
    const secure = new TLSSocket(raw, { isServer: true, secureContext: this.ctx.tls });
    secure.on('data', (chunk: Buffer) => this.onData(chunk));
    secure.on('error', (err) => {
      this.log.info({ err: { message: err.message } }, 'TLS on the control connection failed');
      secure.destroy();
      raw.destroy();
    });
    this.conn.upgrade(secure);
    return undefined;
  }

  // ---- login -----------------------------------------------------------------------------------

  private tlsMissing(): boolean {
    return this.ctx.tlsRequired && !this.conn.secure;
  }

  async user(arg: string | null) {
    if (this.loggedIn) return this.conn.reply(503, 'Already logged in');
    if (this.tlsMissing()) return this.conn.reply(530, 'This server requires TLS: send AUTH TLS first');
    const name = (arg ?? '').trim();
    if (!name) return this.conn.reply(501, 'Give a user name (or anonymous)');
    this.username = name;
    if (isAnonymous(name)) return this.conn.reply(331, 'Anonymous access: send any password (your e-mail address, by custom)');
    return this.conn.reply(331, `Password required for ${name}`);
  }

  async pass(arg: string | null) {
    if (this.loggedIn) return this.conn.reply(503, 'Already logged in');
    if (this.tlsMissing()) return this.conn.reply(530, 'This server requires TLS: send AUTH TLS first');
    if (!this.username) return this.conn.reply(503, 'Send USER first');
    const username = this.username;
    if (isAnonymous(username)) {
      this.login(null);
      this.log.info('anonymous FTP login');
      return this.conn.reply(230, 'Anonymous access granted: you can list and download; log in with an account to upload');
    }
    try {
      const user = await this.ctx.auth.verifyLogin(username, arg ?? '', this.ip);
      this.login({ username: user.username, role: user.role });
      this.log.info({ user: user.username }, 'FTP login');
      return this.conn.reply(230, `Welcome to ${this.ctx.siteName}, ${user.username}`);
    } catch (err) {
      this.username = null;
      if (isAppError(err) && err.kind === 'unauthorized') {
        this.log.info({ user: username }, 'FTP login failed');
        return this.conn.reply(530, 'Login incorrect');
      }
      if (isAppError(err) && err.kind === 'rate_limited') {
        this.log.warn({ user: username }, 'FTP login refused: too many failures from this address');
        return this.closeWith(421, `Too many failed logins from your address; try again in ${err.retryAfter ?? 60} seconds`);
      }
      return this.fail(err);
    }
  }

  private login(actor: Actor | null) {
    this.actor = actor;
    this.loggedIn = true;
    this.conn.markAuthenticated();
  }

  // ---- folders ---------------------------------------------------------------------------------

  private resolve(arg: string | null): VirtualPath {
    return resolvePath(this.cwd, arg);
  }

  /**
   * What is at a path: a fixed folder, a folder of a kind, a file, or nothing. `/library/<kind>/A/B`
   * is the folder `A/B` when it exists, else the item named `B` in `A`; `/upload/<name>` is the
   * logged-in member's own newest item of that path name (what /upload/ lists; none for anonymous).
   */
  private async place(p: VirtualPath): Promise<Place> {
    const library = this.ctx.library;
    switch (p.type) {
      case 'root':
      case 'library':
      case 'upload':
        return { is: 'fixed', path: p.path, at: p };
      case 'kind':
        return { is: 'folder', path: p.path, kind: p.kind, folder: '' };
      case 'entry': {
        const folder = folderOf(p);
        if (await library.folderExists(p.kind, folder)) return { is: 'folder', path: p.path, kind: p.kind, folder };
        const item = await library.findByName(p.kind, p.folder, p.name);
        if (item) return { is: 'file', path: p.path, kind: p.kind, folder: p.folder, name: p.name, item };
        return { is: 'missing', path: p.path };
      }
      case 'drop': {
        const item = this.actor ? await library.findOwn(this.actor.username, p.name, UPLOAD_LISTING_MAX) : null;
        if (item) return { is: 'file', path: entryPath(item.kind, item.folder, p.name), kind: item.kind, folder: item.folder, name: p.name, item };
        return { is: 'missing', path: p.path };
      }
      default:
        return { is: 'missing', path: p.path };
    }
  }

  pwd() {
    return this.conn.reply(257, `${quotePath(this.cwd)} is the current folder`);
  }

  async cwdTo(arg: string | null) {
    const place = await this.place(this.resolve(arg ?? '/'));
    if (place.is !== 'fixed' && place.is !== 'folder') return this.conn.reply(550, `${arg}: no such folder`);
    this.cwd = place.path;
    return this.conn.reply(250, `Folder changed to ${place.path}`);
  }

  /** MKD: a folder below a kind (its parents made with it), which stays until RMD even when empty. */
  async mkd(arg: string | null) {
    const actor = this.member();
    const p = this.resolve(arg);
    if (p.type !== 'entry') {
      if (p.type === 'kind' || isFixedFolder(p)) return this.conn.reply(550, `${p.path}: exists already, and is not yours to make`);
      return this.conn.reply(550, 'Folders can be made in /library/<kind>/ only');
    }
    const folder = requireAcceptedFolder(folderOf(p));
    await this.ctx.library.makeFolder(p.kind, folder, actor);
    return this.conn.reply(257, `${quotePath(p.path)} created`);
  }

  /** RMD: an empty folder made with MKD (one that holds nothing, not even other folders). */
  async rmd(arg: string | null) {
    const actor = this.member();
    const place = await this.place(this.resolve(arg));
    if (place.is === 'fixed' || (place.is === 'folder' && place.folder === '')) return this.conn.reply(550, `${place.path}: this folder cannot be removed`);
    if (place.is === 'file') return this.conn.reply(550, `${place.path}: not a folder; use DELE`);
    if (place.is === 'missing') return this.conn.reply(550, `${place.path}: no such folder`);
    try {
      await this.ctx.library.removeFolder(place.kind, place.folder, actor);
    } catch (err) {
      if (isAppError(err) && err.kind === 'conflict') return this.conn.reply(550, `Folder not empty: ${place.path}`);
      throw err;
    }
    return this.conn.reply(250, `Folder ${place.path} removed`);
  }

  private canChange(item: Item): boolean {
    return !!this.actor && (this.actor.role === 'admin' || this.actor.username === item.uploadedBy);
  }

  /** The file at a path, or `not_found` (a folder, or nothing there). */
  private async findItem(p: VirtualPath, known?: Place): Promise<FilePlace> {
    const place = known ?? (await this.place(p));
    if (place.is === 'file') return place;
    throw new AppError('not_found', place.is === 'missing' ? 'No such file' : `${place.path}: is a folder, not a plain file`);
  }

  /**
   * RFC 3659 perm facts of a folder for this session. Anonymous sessions list and enter (`el`);
   * members may also store files (`c`) in a kind's folders and /upload/, make folders (`m`) and
   * delete their own items (`p`) in a kind's folders, and rename (`f`) folders below a kind. An
   * empty folder below a kind may be removed (`d`: RMD).
   */
  private folderPerm(where: 'root' | 'library' | 'upload' | 'kind' | 'sub', items = 0): string {
    if (!this.actor || where === 'root' || where === 'library') return 'el';
    if (where === 'upload') return 'elc';
    if (where === 'kind') return 'elcmp';
    return items === 0 ? 'elcmfpd' : 'elcmfp';
  }

  private fileEntry(name: string, item: Item): Entry {
    return itemEntry(name, item, this.canChange(item));
  }

  private async *entries(place: Place): AsyncGenerator<Entry[]> {
    if (place.is === 'fixed') {
      const { at } = place;
      if (at.type === 'root') {
        yield [folderEntry('library', this.folderPerm('library')), folderEntry('upload', this.folderPerm('upload'))];
      } else if (at.type === 'library') {
        yield subfolders(at).map((name) => folderEntry(name, this.folderPerm('kind')));
      } else if (this.actor) {
        // The member's own latest items, so a sync tool finds what it stored; anonymous sees it empty.
        const own = await this.ctx.library.itemsBy(this.actor.username, UPLOAD_LISTING_MAX);
        yield own.map(({ name, item }) => this.fileEntry(name, item));
      }
      return;
    }
    if (place.is === 'folder') {
      for await (const page of this.ctx.library.listSubfolders(place.kind, place.folder)) {
        yield page.map((f) => folderEntry(f.name, this.folderPerm('sub', f.items)));
      }
      for await (const page of this.ctx.library.listFolder(place.kind, place.folder)) {
        yield page.map(({ name, item }) => this.fileEntry(name, item));
      }
      return;
    }
    if (place.is === 'file') yield [this.fileEntry(place.name, place.item)];
  }

  /** LIST, NLST and MLSD: the listing goes over the data connection, a page at a time. */
  async list(directive: 'LIST' | 'NLST' | 'MLSD', arg: string | null) {
    const place = await this.place(this.resolve(stripListFlags(arg)));
    if (place.is === 'missing') return this.conn.reply(550, 'No such file or folder');
    if (directive === 'MLSD' && place.is === 'file') return this.conn.reply(501, 'MLSD lists folders; use MLST for a file');
    const format = directive === 'LIST' ? (e: Entry) => lsLine(e) : directive === 'NLST' ? (e: Entry) => e.name : mlsxLine;
    await this.withData(async (socket) => {
      for await (const page of this.entries(place)) {
        const text = page.map((e) => `${format(e)}\r\n`).join('');
        if (!socket.write(text)) await whenDrained(socket);
      }
    }, 'Here comes the listing');
  }

  async mlst(arg: string | null) {
    const place = await this.place(this.resolve(arg));
    const name = place.path === '/' ? '/' : place.path.slice(place.path.lastIndexOf('/') + 1);
    let entry: Entry;
    if (place.is === 'fixed') entry = folderEntry(name, this.folderPerm(place.at.type));
    else if (place.is === 'folder') {
      entry = folderEntry(name, place.folder === '' ? this.folderPerm('kind') : this.folderPerm('sub', await this.ctx.library.folderItemCount(place.kind, place.folder)));
    } else if (place.is === 'file') entry = this.fileEntry(place.name, place.item);
    else throw new AppError('not_found', 'No such file or folder');
    return this.multiline(250, `Listing ${place.path}`, [` ${mlsxLine({ ...entry, name: place.path })}`], 'End');
  }

  /**
   * SIZE of an item, or, where there is none, of the member's own unfinished upload of that path:
   * its durable offset, where `curl -C -` (APPE) and `lftp put -c` (REST + STOR) continue.
   */
  async size(arg: string | null) {
    const p = this.resolve(arg);
    const place = await this.place(p);
    if (place.is === 'missing') {
      const unfinished = await this.unfinishedAt(p);
      if (unfinished) return this.conn.reply(213, String(unfinished.offset));
    }
    const { item } = await this.findItem(p, place);
    return this.conn.reply(213, String(item.size));
  }

  /** Where an upload to `p` goes (a kind's folder, or /upload/ with the kind guessed), or null for any other path. */
  private uploadPlace(p: VirtualPath): UploadPlace | null {
    if (p.type === 'entry') return { kind: p.kind, folder: requireAcceptedFolder(p.folder), name: checkName(p.name) };
    if (p.type === 'drop') return { folder: '', name: checkName(p.name) };
    return null;
  }

  /** The logged-in member's unfinished upload of `p` (nobody else's), or null. */
  private async unfinishedAt(p: VirtualPath) {
    if (!this.actor) return null;
    let where: UploadPlace | null;
    try {
      where = this.uploadPlace(p);
    } catch {
      return null; // a name no upload could have
    }
    return where ? this.ctx.uploads.findAt(this.actor, where) : null;
  }

  async mdtm(arg: string | null) {
    const { item } = await this.findItem(this.resolve(arg));
    return this.conn.reply(213, ftpTime(itemTime(item)));
  }

  /** MFMT YYYYMMDDHHMMSS[.sss] path (draft-somers-ftp-mfxx): sets an item's own modification time. */
  async mfmt(arg: string | null) {
    const text = arg ?? '';
    const space = text.indexOf(' ');
    const at = space === -1 ? null : parseFtpTime(text.slice(0, space));
    if (!at || !text.slice(space + 1)) return this.conn.reply(501, 'Use MFMT YYYYMMDDHHMMSS path, a UTC time from 1970 to 9999');
    const path = text.slice(space + 1);
    await this.setModified(path, at);
    return this.conn.reply(213, `Modify=${text.slice(0, space)}; ${path}`);
  }

  /**
   * SITE: UTIME sets a modification time like MFMT; CHMOD is accepted and ignored (sync tools send
   * it for every file, and permissions here are the library's, not the file's).
   */
  async site(arg: string | null) {
    const text = (arg ?? '').trim();
    const space = text.indexOf(' ');
    const sub = (space === -1 ? text : text.slice(0, space)).toUpperCase();
    const rest = space === -1 ? '' : text.slice(space + 1);
    if (sub === 'CHMOD') return this.conn.reply(200, 'SITE CHMOD accepted and ignored: permissions are set by the library');
    if (sub === 'UTIME') {
      const parsed = parseUtime(rest);
      if (!parsed) return this.conn.reply(501, 'Use SITE UTIME path YYYYMMDDHHMMSS [YYYYMMDDHHMMSS YYYYMMDDHHMMSS UTC], or SITE UTIME YYYYMMDDHHMMSS path');
      await this.setModified(parsed.path, parsed.at);
      return this.conn.reply(200, `Modification time of ${parsed.path} set to ${ftpTime(parsed.at)}`);
    }
    return this.conn.reply(502, sub ? `SITE ${sub} is not available` : 'SITE CHMOD and SITE UTIME are available');
  }

  /** Sets the modification time of the item at `arg`: its uploader or an admin (as DELE). */
  private async setModified(arg: string, at: Date) {
    const actor = this.member();
    const { item } = await this.findItem(this.resolve(arg));
    await this.ctx.library.setModifiedAt(item.id, at, actor);
  }

  restAt(arg: string | null) {
    if (!arg || !/^\d{1,16}$/.test(arg.trim())) return this.conn.reply(501, 'REST takes a byte offset');
    this.rest = Number(arg.trim());
    return this.conn.reply(350, `Restarting at ${this.rest}; now send RETR, or STOR to continue your unfinished upload`);
  }

  // ---- changes ---------------------------------------------------------------------------------

  private member(): Actor {
    if (!this.actor) throw new AppError('forbidden', 'Permission denied: anonymous users can list and download only');
    return this.actor;
  }

  /** DELE an item (its uploader or an admin), or where there is none, one's own unfinished upload of that path. */
  async dele(arg: string | null) {
    const actor = this.member();
    const p = this.resolve(arg);
    const place = await this.place(p);
    if (place.is === 'folder' || place.is === 'fixed') return this.conn.reply(550, `${place.path} is a folder: use RMD`);
    if (place.is === 'missing') {
      const unfinished = await this.unfinishedAt(p);
      if (unfinished && (await this.ctx.uploads.dropAt(actor, this.uploadPlace(p)!))) return this.conn.reply(250, `Deleted your unfinished upload of ${place.path} (${unfinished.offset} bytes)`);
      return this.conn.reply(550, 'No such file');
    }
    await this.ctx.library.remove(place.item.id, actor);
    return this.conn.reply(250, 'Deleted');
  }

  /**
   * Refuses (553) a folder whose way passes through a file's name (`A/B` when `A` is a file in the
   * kind's root). The library refuses it too when it stores; asking first spares a useless upload.
   */
  private async requireFolderWay(kind: ItemKind, folder: string) {
    const library = this.ctx.library;
    for (const step of foldersOnTheWay(folder)) {
      if (await library.folderExists(kind, step.folder)) continue;
      if (await library.findByName(kind, step.parent, step.name)) {
        throw new AppError('bad_input', `${entryPath(kind, step.parent, step.name)} is a file: no folder can be made through it`);
      }
      return; // the folders below a missing one are missing too
    }
  }

  async rnfr(arg: string | null) {
    this.member();
    const place = await this.place(this.resolve(arg));
    if (place.is === 'fixed' || (place.is === 'folder' && place.folder === '')) return this.conn.reply(550, `${place.path}: this folder cannot be renamed`);
    if (place.is === 'missing') return this.conn.reply(550, 'No such file or folder');
    this.renameFrom = place;
    return this.conn.reply(350, 'Ready for RNTO');
  }

  /**
   * RNTO after RNFR. A file moves to any folder and name of any kind (its title follows its file
   * name when it was that name); a folder moves with everything below it within its kind, in one
   * step readers see whole. A taken target is refused (553), never overwritten.
   */
  async rnto(arg: string | null) {
    const actor = this.member();
    const from = this.renameFrom;
    this.renameFrom = null;
    if (!from) return this.conn.reply(503, 'Send RNFR first');
    const to = this.resolve(arg);
    if (to.type !== 'entry') return this.conn.reply(553, 'Files and folders can be renamed within /library/<kind>/ only');
    const library = this.ctx.library;
    if (from.is === 'folder') {
      if (to.kind !== from.kind) return this.conn.reply(553, 'Rename refused: folders move within their kind');
      const target = requireAcceptedFolder(folderOf(to));
      try {
        await library.moveFolder(from.kind, from.folder, target, actor);
      } catch (err) {
        // The target is there already, or a file stands in its way: the name is refused, as for files.
        if (isAppError(err) && err.kind === 'conflict') return this.conn.reply(553, err.message);
        throw err;
      }
      return this.conn.reply(250, `Renamed to ${kindFolderPath(to.kind, target)}`);
    }
    const name = checkName(to.name);
    const folder = requireAcceptedFolder(to.folder);
    const item = await library.get(from.item.id).catch(noSuchFile);
    if (item.kind === to.kind && item.folder === folder && from.name === name) return this.conn.reply(250, 'Renamed');
    if (await library.folderExists(to.kind, folderOf(to))) return this.conn.reply(553, `${to.path} is a folder`);
    const taken = await library.findByName(to.kind, folder, name);
    if (taken && taken.id !== item.id) return this.conn.reply(553, `${name} already exists in ${kindFolderPath(to.kind, folder)}`);
    await this.requireFolderWay(to.kind, folder);
    const patch: ItemPatch = { filename: name, folder };
    if (to.kind !== item.kind) patch.kind = to.kind;
    if (item.title === titleFromFilename(item.filename)) patch.title = titleFromFilename(name);
    let updated: Item;
    try {
      updated = await library.update(item.id, patch, actor);
    } catch (err) {
      if (isAppError(err) && err.kind === 'conflict') return this.conn.reply(553, err.message);
      throw err;
    }
    const stored = await library.nameOf(updated.id);
    return this.conn.reply(250, `Renamed to ${entryPath(updated.kind, updated.folder, stored ?? name)}`);
  }

  // ---- data connections ------------------------------------------------------------------------

  private channelOptions() {
    return {
      clientIp: this.ip,
      tls: this.conn.secure ? this.ctx.tls : undefined,
      connectTimeoutMs: this.ctx.dataTimeoutMs,
      acceptTimeoutMs: this.ctx.pasvTimeoutMs,
      log: this.log,
    };
  }

  private replaceChannel(channel: DataChannel | null) {
    this.channel?.close();
    this.channel = channel;
  }

  /**
   * PASV/EPSV. The session's previous data channel is closed first, so one session holds at most
   * one passive port however often it asks, and that port counts once in its address's share.
   */
  async pasv(extended: boolean) {
    if (this.ctx.closing()) return this.conn.reply(421, 'Service shutting down');
    this.replaceChannel(null);
    let channel: PassiveChannel;
    try {
      channel = await PassiveChannel.open(this.ctx.ports, this.channelOptions());
    } catch (err) {
      const held = this.ctx.ports.heldBy(this.ip);
      const perIp = this.ctx.ports.perIp;
      this.log.warn({ held, perIp }, held >= perIp ? 'refused a passive port: the client address holds its share' : 'refused a passive port: none free');
      throw err;
    }
    if (this.closed) {
      channel.close(); // the control connection went while the port was being opened
      return undefined;
    }
    this.replaceChannel(channel);
    if (extended) return this.conn.reply(229, `Entering Extended Passive Mode (|||${channel.port}|)`);
    const local = normalizeIp(this.conn.socket.localAddress);
    const loopback = this.ip === '127.0.0.1' || this.ip === '::1';
    const address = loopback ? local : (this.ctx.pasvAddress ?? local);
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) {
      this.replaceChannel(null);
      return this.conn.reply(425, 'PASV needs IPv4: use EPSV');
    }
    const p = channel.port;
    return this.conn.reply(227, `Entering Passive Mode (${address.replace(/\./g, ',')},${p >> 8},${p & 255})`);
  }

  async port(directive: 'PORT' | 'EPRT', arg: string | null) {
    let target: { host: string; port: number };
    try {
      target = ActiveChannel.parse(directive, arg);
      ActiveChannel.check(target, this.ip);
    } catch (err) {
      if (target!) this.log.warn({ target: target.host, port: target.port }, `refused ${directive} to another address than the client or a privileged port`);
      // 501: a syntax or argument error (RFC 959), not a file name problem.
      const { code, message } = replyFor(err, { badInput: 501, fallback: 501 });
      return this.conn.reply(code, isAppError(err) ? message : `Illegal ${directive} command`);
    }
    this.replaceChannel(new ActiveChannel(target.host, target.port, this.channelOptions()));
    return this.conn.reply(200, `${directive} command successful; consider using EPSV`);
  }

  /**
   * Runs `work` on the data connection: replies 150 as soon as the data connection is made, then
   * (with TLS) waits for the TLS handshake within the data timeout, so that clients which read 150
   * before starting TLS and clients which start TLS first both work (RFC 4217); pauses the idle
   * timer, stops a stalled data connection after the data timeout, closes the data connection when
   * done and replies 226, or 425 when TLS could not be set up, or 426 when the transfer was aborted
   * or the connection failed.
   */
  private async withData(work: (socket: Socket, transfer: { aborted: () => string | null; committing: () => void }) => Promise<void | string>, opening: string): Promise<void> {
    const channel = this.channel;
    this.channel = null;
    if (!channel) return void (await this.conn.reply(425, 'Use PASV, EPSV, PORT or EPRT first'));
    if (this.ctx.closing()) {
      channel.close();
      return void (await this.conn.reply(421, 'Service shutting down'));
    }
    let raw: Socket;
    try {
      raw = await channel.connect();
    } catch (err) {
      channel.close();
      return void (await this.conn.reply(425, isAppError(err) ? err.message : 'Cannot open the data connection'));
    }
    raw.on('error', () => undefined);
    /** The connection the transfer runs on: the TLS socket over `raw` once secured. */
    let socket = raw;
    let abortReason: string | null = null;
    // Once an upload is being committed, ABOR/QUIT/shutdown no longer stop it: the reply must say
    // what happened, and what happens is that it is stored.
    let committing = false;
    const stop = (reason: string) => {
      if (committing) return;
      abortReason ??= reason;
      socket.destroy();
      raw.destroy();
    };
    this.transfer = { abort: stop, bytes: () => socket.bytesRead + socket.bytesWritten };
    this.armIdle();
    try {
      await this.conn.reply(150, opening);
      try {
        socket = await channel.secure(raw);
      } catch (err) {
        if (abortReason) throw new Error(abortReason);
        // 425 after 150: the data connection could not be opened (RFC 959), nothing was transferred.
        this.log.info({ err: { message: err instanceof Error ? err.message : String(err) } }, 'TLS on a data connection failed');
        raw.destroy();
        return void (await this.conn.reply(425, isAppError(err) ? err.message : 'Cannot open the data connection'));
      }
      if (abortReason) throw new Error(abortReason);
      socket.setTimeout(this.ctx.dataTimeoutMs, () => stop('data connection stalled'));
      socket.on('error', () => undefined);
      const done = await work(socket, { aborted: () => abortReason, committing: () => (committing = true) });
      if (abortReason) throw new Error(abortReason);
      if (!socket.destroyed) {
        socket.end();
        await Promise.race([finished(socket, { readable: false }).catch(() => undefined), new Promise((r) => setTimeout(r, this.ctx.dataTimeoutMs).unref())]);
      }
      if (abortReason) throw new Error(abortReason);
      await this.conn.reply(226, done || 'Transfer complete');
    } catch (err) {
      if (isAppError(err) && !abortReason) {
        // Say why first (e.g. 552), then drop the data connection the client may still be sending on.
        await this.fail(err);
        // An upload over the limit: the client is still sending and most clients read the control
        // connection only when done, so take (and drop) what it sends for a while, then close.
        if (err.kind === 'too_large') await discardUntilEnd(socket, 10_000);
        socket.destroy();
        return;
      }
      socket.destroy();
      if (abortReason === 'ABOR') {
        await this.conn.reply(426, 'Transfer aborted');
        await this.conn.reply(226, 'ABOR successful');
      } else {
        if (!isAppError(err) && !abortReason) this.log.warn({ err }, 'FTP transfer failed');
        await this.conn.reply(426, abortReason === 'data connection stalled' ? 'Data connection stalled; transfer aborted' : 'Connection closed; transfer aborted');
      }
    } finally {
      channel.close();
      this.transfer = null;
      for (const done of this.transferDone.splice(0)) done();
      this.armIdle();
    }
  }

  /** RETR, from REST's offset when one was given. The item is read once; its body sends itself. */
  async retr(arg: string | null) {
    const offset = this.rest;
    this.rest = 0;
    const place = await this.findItem(this.resolve(arg));
    const content = await this.ctx.library.read(place.item.id).catch(noSuchFile);
    const { item } = content;
    if (offset > item.size) return this.conn.reply(554, `Restart offset ${offset} is beyond the end of the file (${item.size} bytes)`);
    await this.withData(async (socket) => {
      await (await content.open({ start: offset, end: item.size - 1 })).sendTo(socket);
      this.log.info({ id: item.id, offset, size: item.size, user: this.actor?.username ?? 'anonymous' }, 'FTP download');
      if (offset === 0) this.ctx.library.countDownload(item.id).catch((err) => this.log.warn({ err }, 'download not counted'));
    }, `Opening BINARY data connection for ${place.name} (${item.size - offset} bytes)`);
  }

  /**
   * STOR into a folder of a kind (made when missing) or /upload/ (kind guessed, stored at the kind's
   * root). Onto an existing file: its uploader (or an admin) replaces its bytes, keeping the item
   * (id, tags, description); anyone else is refused, and so is REST or APPE (a finished item's bytes
   * are never appended to). STOU always stores a new item, under a name of its own when the asked one
   * is taken. Either is staged through the library like any upload, committed only when the data
   * connection ended cleanly and the session is still there, and discarded otherwise.
   *
   * A new file (nothing at its path) goes in as the member's resumable upload of that path (see
   * `ResumableUploads.receiveAt`): it becomes the item when the data connection ends cleanly with the
   * session still there; interrupted (data connection reset or stalled, control connection lost,
   * ABOR, shutdown), what arrived is kept as the member's unfinished upload there. SIZE tells its
   * offset; `REST n` + STOR continues it at n (its offset, nothing else) and APPE at its offset (APPE
   * with none starts one); a plain STOR starts the file again.
   */
  async stor(directive: 'STOR' | 'APPE' | 'STOU', arg: string | null) {
    const actor = this.member();
    const offset = this.rest;
    this.rest = 0;
    if (directive === 'STOU' && offset > 0) return this.conn.reply(554, 'STOU stores a new file: REST does not apply to it');
    const target = this.resolve(directive === 'STOU' && !arg ? `upload-${Date.now()}` : arg);
    if (target.type !== 'entry' && target.type !== 'drop') return this.conn.reply(553, 'Store files into /library/<kind>/ (or a folder in it) or /upload/');
    const name = checkName(target.name);
    const kind = target.type === 'entry' ? target.kind : undefined;
    const folder = target.type === 'entry' ? requireAcceptedFolder(target.folder) : '';
    const resuming = directive === 'APPE' || offset > 0;
    let replacing: Item | null = null;
    const place = await this.place(target);
    if (place.is === 'folder') return this.conn.reply(553, `${place.path} is a folder`);
    if (place.is === 'file' && directive !== 'STOU') {
      if (resuming) {
        return this.conn.reply(550, `${place.path} is a finished file: its bytes are never appended to; send it whole (STOR without REST) to replace it`);
      }
      if (!this.canChange(place.item)) {
        return this.conn.reply(553, `${place.name} already exists in ${kindFolderPath(place.kind, place.folder)} and is another member's: choose another name`);
      }
      replacing = place.item;
    }
    if (directive === 'STOU' || replacing) {
      // A stale unfinished upload of one's own at this path is superseded by the whole file.
      if (replacing) await this.ctx.uploads.dropAt(actor, { kind, folder, name });
      return this.storWhole(actor, { name, kind, folder }, replacing);
    }
    const where: UploadPlace = { kind, folder, name };
    const from: ReceiveFrom = offset > 0 ? offset : directive === 'APPE' ? 'end' : 'start';
    if (typeof from === 'number') {
      // Said before the data connection opens; checked again under the upload's lock.
      const unfinished = await this.ctx.uploads.findAt(actor, where);
      if (!unfinished) return this.conn.reply(554, `You have no unfinished upload of ${target.path} to continue: send the whole file (STOR without REST)`);
      if (unfinished.offset !== offset) {
        return this.conn.reply(554, `Restart offset ${offset} does not match your unfinished upload of ${target.path}, which has ${unfinished.offset} bytes: send REST ${unfinished.offset}`);
      }
    }
    if (kind) await this.requireFolderWay(kind, folder);
    const uploads = this.ctx.uploads;
    await this.withData(async (socket, transfer) => {
      const interrupted = () => transfer.aborted() ?? (this.closed || this.peerEnded ? 'control connection closed' : null);
      let result;
      const direct = socketChunks(socket);
      try {
        result = await uploads.receiveAt(actor, where, from, {}, direct ?? socket.iterator({ destroyOnReturn: false }), {
          // A client that dies closes its data connection like a finished upload would: let the close
          // of the control connection, if it comes with it, be seen before taking it as the whole file.
          ended: async () => {
            await nextTurn();
            if (interrupted()) return false;
            transfer.committing();
            return true;
          },
          stop: () => socket.destroy(),
        });
      } catch (err) {
        // A refusal mid-body leaves the body unread: done with it, so that the drain before the
        // answer (discardUntilEnd) reads the rest and drops it.
        await direct?.[Symbol.asyncIterator]().return?.();
        const why = interrupted();
        if (why) throw new Error(why);
        throw await this.uploadFailure(err, actor, where, target.path);
      }
      socket.destroy(); // the client has sent everything; nothing goes back on this connection
      if (!result.finished) throw new Error(interrupted() ?? 'control connection closed');
      this.log.info({ id: result.finished.itemId, size: result.offset, user: actor.username, resumed: from !== 'start' }, 'FTP upload');
      return `Transfer complete: stored as ${result.finished.path ?? name}`;
    }, `Ok to send data for ${name}${typeof from === 'number' ? ` from byte ${from}` : ''}`);
  }

  /** The FTP reply to a resumable STOR that failed (not by an interruption the session saw itself). */
  private async uploadFailure(err: unknown, actor: Actor, where: UploadPlace, path: string): Promise<unknown> {
    if (err instanceof UploadLockedError) return new FtpRefusal(450, `Another transfer is writing ${path} now; try again in a moment`);
    if (isAppError(err) && err.kind === 'rate_limited') return new FtpRefusal(552, err.message);
    if (isAppError(err) && err.kind === 'too_large' && /^The file is larger/.test(err.message)) {
      return new AppError('too_large', `Exceeded storage allocation: files are limited to ${this.ctx.maxUploadBytes} bytes; nothing was stored`);
    }
    if (isAppError(err) && err.kind !== 'bad_input') return err;
    // The data connection failed (reset): say what is kept and how to go on.
    const kept = await this.ctx.uploads.findAt(actor, where).catch(() => null);
    if (!kept) return new FtpRefusal(426, 'Connection closed; transfer aborted');
    return new FtpRefusal(426, `Connection closed; transfer aborted: ${kept.offset} bytes of ${path} are kept; continue with REST ${kept.offset} and STOR, or APPE`);
  }

  /** STOU, or STOR onto one's own existing file: the whole file through the library's staging, committed only when complete. */
  private async storWhole(actor: Actor, to: { name: string; kind?: ItemKind; folder: string }, replacing: Item | null) {
    const { name, kind, folder } = to;
    const library = this.ctx.library;
    if (kind && !replacing) await this.requireFolderWay(kind, folder);
    await this.withData(async (socket, transfer) => {
      let staged;
      try {
        // Not destroyed when staging stops early (too large): the 552 goes out before the data connection drops.
        staged = await library.stage(socketChunks(socket) ?? socket.iterator({ destroyOnReturn: false }));
      } catch (err) {
        if (isAppError(err) && err.kind === 'too_large') {
          throw new AppError('too_large', `Exceeded storage allocation: files are limited to ${this.ctx.maxUploadBytes} bytes; nothing was stored`);
        }
        throw err;
      }
      socket.destroy(); // the client has sent everything; nothing goes back on this connection
      // A client that dies closes its data connection like a finished upload would: let the close of
      // the control connection, if it comes with it, be seen before committing.
      await nextTurn();
      const aborted = transfer.aborted() ?? (this.closed || this.peerEnded ? 'control connection closed' : null);
      if (aborted) {
        await staged.discard();
        throw new Error(aborted);
      }
      transfer.committing();
      if (replacing) {
        const item = await staged.replace(replacing.id, actor);
        const stored = await library.nameOf(item.id);
        this.log.info({ id: item.id, size: item.size, user: actor.username }, 'FTP upload replaced an item\'s content');
        return `Transfer complete: replaced the content of ${entryPath(item.kind, item.folder, stored ?? item.filename)}`;
      }
      const item = await staged.commit({ filename: name, kind, folder }, actor);
      const stored = await library.nameOf(item.id);
      this.log.info({ id: item.id, size: item.size, user: actor.username }, 'FTP upload');
      return `Transfer complete: stored as ${entryPath(item.kind, item.folder, stored ?? item.filename)}`;
    }, `Ok to send data for ${name}`);
  }

  // ---- status ----------------------------------------------------------------------------------

  stat() {
    return this.multiline(
      211,
      `${this.ctx.siteName} FTP status`,
      [
        ` Connected from ${this.ip}`,
        ` Logged in as ${this.loggedIn ? (this.actor?.username ?? 'anonymous') : '(nobody)'}`,
        ` TYPE: BINARY; ${this.conn.secure ? 'control connection secured with TLS' : 'no TLS'}`,
      ],
      'End of status',
    );
  }

  feat() {
    const features = ['EPRT', 'EPSV', 'MDTM', 'MFMT', 'MLST type*;size*;modify*;perm*;', 'PASV', 'REST STREAM', 'SIZE', 'TVFS', 'UTF8'];
    if (this.ctx.tls) features.push('AUTH TLS', 'PBSZ', 'PROT');
    return this.multiline(211, 'Features:', features.sort().map((f) => ` ${f}`), 'End');
  }

  /** `211-first`, the lines as they are, `211 last` (RFC 959 multi-line reply). */
  private multiline(code: number, first: string, lines: string[], last: string) {
    return this.conn.reply(code, first, ...lines.map((message) => ({ raw: true as const, message })), last);
  }
}

/** A UTC time as SITE UTIME gives it (see `parseFtpTime`). */
const utimeTime = (text: string) => parseFtpTime(text);

/**
 * The arguments of SITE UTIME in the forms clients send: `path atime mtime ctime UTC` (lftp,
 * FileZilla; the second time is the modification time), `path mtime`, and `mtime path`. The path
 * may hold spaces, so times are taken from the ends.
 */
export function parseUtime(rest: string): { path: string; at: Date } | null {
  if (rest.endsWith(' UTC')) {
    const parts = rest.slice(0, -4).split(' ');
    if (parts.length < 4) return null;
    const times = parts.slice(-3).map(utimeTime);
    const path = parts.slice(0, -3).join(' ');
    if (times.some((t) => !t) || !path) return null;
    return { path, at: times[1]! };
  }
  const first = rest.indexOf(' ');
  if (first === -1) return null;
  const leading = utimeTime(rest.slice(0, first));
  if (leading) return { path: rest.slice(first + 1), at: leading };
  const last = rest.lastIndexOf(' ');
  const trailing = utimeTime(rest.slice(last + 1));
  if (trailing && last > 0) return { path: rest.slice(0, last), at: trailing };
  return null;
}

/** The library's "no such item", in the words of a file system. */
function noSuchFile(err: unknown): never {
  if (isAppError(err) && err.kind === 'not_found') throw new AppError('not_found', 'No such file');
  throw err;
}

const isAnonymous = (name: string) => name.toLowerCase() === 'anonymous' || name.toLowerCase() === 'ftp';

/** A name must already be what the library would store, so the file ends up exactly where asked (the rule every door shares). */
const checkName = (name: string): string => requireAcceptedFilename(name);

/** `LIST -la /path` → `/path`; a lone `-la` → no path. */
function stripListFlags(arg: string | null): string | null {
  if (!arg) return null;
  const m = /^(?:-[A-Za-z]+\s*)+(.*)$/.exec(arg.trim());
  return m ? m[1] || null : arg;
}

/** Drops Telnet commands (IAC sequences) that some clients send before ABOR. */
function stripTelnet(line: Buffer): Buffer {
  if (!line.includes(0xff)) return line;
  const out: number[] = [];
  for (let i = 0; i < line.length; i++) {
    if (line[i] === 0xff) {
      if (line[i + 1] === 0xff) out.push(0xff);
      i++;
      continue;
    }
    out.push(line[i]!);
  }
  return Buffer.from(out);
}

/** Reads and drops what a socket sends until it ends or `ms` pass. */
function discardUntilEnd(socket: Socket, ms: number): Promise<void> {
  // Already over: the client sent the rest and its end before the refusal was made.
  if (socket.destroyed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      resolve();
    }
    socket.once('end', done);
    socket.once('close', done);
    socket.on('data', () => undefined);
    socket.resume();
  });
}

