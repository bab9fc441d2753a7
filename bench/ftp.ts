/**
 * FTP benchmark: STOR and RETR of the payload through the FTP service running as its own process
 * (dist/ftp.mjs, as deployed beside the gateway), curl as the client in passive mode, beside the same
 * driver's blob store written and read directly in this run, and — where Debian's vsftpd is installed —
 * beside a throwaway vsftpd moving the same bytes with the same curl commands. Prints MiB/s, the
 * ratios, and the FTP process's peak RSS during each transfer.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, fdatasyncSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../tests/helpers/ports.js';
import type { BlobStore } from '@nondivy/storage';

const MiB = 1024 * 1024;
const VSFTPD = '/usr/sbin/vsftpd';
/** Passive ports per server: curl opens one data connection at a time. */
const PASV_PORTS = 10;

type Driver = 'fs' | 's3';

export interface FtpBenchHelpers {
  work: string;
  size: number;
  runs: number;
  drivers: Driver[];
  adminPassword: string;
  payload(): string;
  openSite(driver: Driver, prefix?: string): Promise<{ env: Record<string, string>; store: BlobStore; close(): Promise<void> }>;
  directFigures(driver: Driver, store: BlobStore, file: string): Promise<{ up: number; down: number }>;
  startChild(cmd: string, args: string[], env: Record<string, string>, readyPattern: RegExp): Promise<ChildProcess>;
  stopChild(child: ChildProcess): Promise<void>;
  startStandalone(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }>;
  measure(pid: number | undefined, fn: () => Promise<void> | void): Promise<{ ms: number; peakRss: number }>;
  runCurl(args: string[]): Promise<{ out: string; err: string }>;
  printTable(title: string, header: string[], rows: string[][]): void;
}

interface Figures {
  /** The FTP process's resident memory once started, before any transfer. */
  idleRss: number;
  stor: number;
  retr: number;
  storRss: number;
  retrRss: number;
}

/** True when `port` can be listened on at 127.0.0.1 right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive free ports, as a NONDIVY_FTP_PASV_RANGE / pasv_min_port..pasv_max_port pair. */
export async function freeRange(count: number, avoid: [number, number][] = []): Promise<[number, number]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20000 + Math.floor(Math.random() * 30000);
    const last = first + count - 1;
    if (avoid.some(([a, b]) => first <= b && last >= a)) continue;
    let ok = true;
    for (let p = first; p <= last && ok; p++) ok = await portFree(p);
    if (ok) return [first, last];
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** Waits until an FTP server on `port` sends its 220 greeting. */
async function waitForGreeting(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the FTP server on port ${port} exited (${child.exitCode ?? child.signalCode})`);
    const greeted = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      let text = '';
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1000, () => done(false));
      socket.on('data', (d) => {
        text += d;
        if (/^220[ -]/m.test(text)) done(true);
      });
      socket.once('error', () => done(false));
      socket.once('close', () => done(false));
    });
    if (greeted) return;
    if (Date.now() > deadline) throw new Error(`the FTP server on port ${port} did not greet within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * One driver: a site (Redis, s3rver for s3), the standalone server started once so the admin account
 * exists in that Redis, then the FTP service alone (dist/ftp.mjs) on the same Redis and blob store.
 * Each run: STOR a new name into /upload/, RETR it anonymously from where the 226 reply says it was
 * stored, DELE it. Both transfers are timed and the FTP process's RSS is sampled meanwhile.
 */
async function ours(h: FtpBenchHelpers, driver: Driver, file: string): Promise<{ ftp: Figures; direct: { up: number; down: number } }> {
  const site = await h.openSite(driver, 'ftp-');
  const started: ChildProcess[] = [];
  try {
    const direct = await h.directFigures(driver, site.store, file);
    await site.store.close();

    // The standalone server creates the admin account in Redis; its own FTP front door gets ports of its own.
    const bootFtpPort = await freePort();
    const bootRange = await freeRange(PASV_PORTS);
    const boot = await h.startStandalone({ ...site.env, NONDIVY_FTP_HOST: '127.0.0.1', NONDIVY_FTP_PORT: String(bootFtpPort), NONDIVY_FTP_PASV_RANGE: bootRange.join('-') });
    started.push(boot.child);
    await h.stopChild(boot.child);

    const port = await freePort();
    const range = await freeRange(PASV_PORTS, [bootRange]);
    const ftp = await h.startChild(
      process.execPath,
      ['--max-semi-space-size=4', 'dist/ftp.mjs'],
      {
        ...site.env,
        // As deployed: info, which also logs each transfer (and the ready line this waits for).
        LOG_LEVEL: 'info',
        NONDIVY_FTP_HOST: '127.0.0.1',
        NONDIVY_FTP_PORT: String(port),
        NONDIVY_FTP_PASV_RANGE: range.join('-'),
      },
      /FTP listening/,
    );
    started.push(ftp);

    const member = `ftp://admin:${encodeURIComponent(h.adminPassword)}@127.0.0.1:${port}`;
    const anonymous = `ftp://127.0.0.1:${port}`;
    const figures: Figures = { idleRss: (await h.measure(ftp.pid, () => undefined)).peakRss, stor: 0, retr: 0, storRss: 0, retrRss: 0 };
    for (let run = 0; run < h.runs; run++) {
      const name = `bench-${driver}-${run}.bin`;
      let stored = '';
      const up = await h.measure(ftp.pid, async () => {
        const { err } = await h.runCurl(['-v', '-o', '/dev/null', '-T', file, `${member}/upload/${name}`]);
        stored = /^< 226 .*stored as (\S+)/m.exec(err)?.[1] ?? '';
      });
      if (!stored) throw new Error(`STOR ${name}: the 226 reply did not say where the file was stored`);
      const down = await h.measure(ftp.pid, async () => {
        await h.runCurl(['-o', '/dev/null', `${anonymous}${stored}`]);
      });
      // --head: no transfer, only the quoted command on the control connection.
      await h.runCurl(['--head', '-o', '/dev/null', '-Q', `DELE ${stored}`, `${member}/`]);
      figures.stor = Math.max(figures.stor, rate(h.size, up.ms));
      figures.retr = Math.max(figures.retr, rate(h.size, down.ms));
      figures.storRss = Math.max(figures.storRss, up.peakRss);
      figures.retrRss = Math.max(figures.retrRss, down.peakRss);
    }
    return { ftp: figures, direct };
  } finally {
    for (const c of started.reverse()) await h.stopChild(c);
    await site.close();
  }
}

/**
 * A throwaway vsftpd in the foreground: anonymous upload and download in a folder of the work dir (the
 * same file system as the blobs), the same curl commands as for ours. Says why when it cannot run.
 */
/** Writes `bytes` of zeros to a new file in `dir`, synced (`fdatasync`) or not, deletes it and returns the rate in MiB/s. */
function writeZeros(dir: string, bytes: number, sync: boolean): number {
  const path = join(dir, `zeros-${process.pid}.bin`);
  const block = Buffer.alloc(MiB);
  const started = performance.now();
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < bytes; done += block.length) writeSync(fd, block, 0, Math.min(block.length, bytes - done));
    if (sync) fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const ms = performance.now() - started;
  rmSync(path, { force: true });
  return rate(bytes, ms);
}

/**
 * Run just before a measured upload: writes and deletes as many bytes as it stores, so that each
 * upload finds the memory it writes into the page cache in the same state. On a virtual machine
 * that hands freed memory back to its host (free page reporting), copying into pages the guest does
 * not hold costs several times as much (measured here: the door timed after others paid up to
 * 1.4 CPU-seconds per GiB more in that one copy, whatever the door).
 */
export function primePageCache(dir: string, bytes: number): void {
  writeZeros(dir, bytes, false);
}

/**
 * The disk's rate for bytes made durable (written, then `fdatasync`), in MiB/s: the ceiling of an
 * upload answered only once its bytes are on disk, as Nondivy's are (vsftpd does not sync).
 */
export function diskSyncedRate(dir: string, bytes: number): number {
  return writeZeros(dir, bytes, true);
}

export async function vsftpd(
  h: Pick<FtpBenchHelpers, 'work' | 'size' | 'runs' | 'measure' | 'runCurl'>,
  file: string,
  options: { prime?: boolean } = {},
): Promise<{ stor: number; retr: number } | { skipped: string }> {
  if (!existsSync(VSFTPD)) return { skipped: `${VSFTPD} is not installed` };
  // It chroots anonymous sessions and switches to the ftp user: that takes root.
  if (process.getuid?.() !== 0) return { skipped: `${VSFTPD} needs root to serve anonymous users from a chroot` };
  const dir = join(h.work, 'vsftpd');
  const root = join(dir, 'root');
  const drop = join(root, 'upload');
  const empty = join(dir, 'empty');
  for (const d of [dir, root, drop, empty]) mkdirSync(d, { recursive: true });
  // vsftpd refuses a chroot root the anonymous user can write to: the writable folder is inside it.
  chmodSync(root, 0o755);
  chmodSync(drop, 0o777);
  chmodSync(empty, 0o755);
  const port = await freePort();
  const [pasvMin, pasvMax] = await freeRange(PASV_PORTS);
  const conf = join(dir, 'vsftpd.conf');
  writeFileSync(
    conf,
    [
      'listen=YES',
      'listen_ipv6=NO',
      'listen_address=127.0.0.1',
      `listen_port=${port}`,
      'background=NO',
      'anonymous_enable=YES',
      'local_enable=NO',
      'write_enable=YES',
      'anon_upload_enable=YES',
      'anon_mkdir_write_enable=NO',
      'anon_other_write_enable=NO',
      'anon_umask=022',
      `anon_root=${root}`,
      'no_anon_password=YES',
      'allow_writeable_chroot=YES',
      `secure_chroot_dir=${empty}`,
      'seccomp_sandbox=NO',
      'isolate=NO',
      'isolate_network=NO',
      'pasv_enable=YES',
      `pasv_min_port=${pasvMin}`,
      `pasv_max_port=${pasvMax}`,
      'connect_from_port_20=NO',
      'xferlog_enable=NO',
      'dirmessage_enable=NO',
      'use_localtime=NO',
      '',
    ].join('\n'),
  );
  const child = spawn(VSFTPD, [conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  child.stderr.on('data', (d) => (errors += d));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    try {
      await waitForGreeting(port, child);
    } catch (err) {
      return { skipped: `vsftpd did not start: ${(err as Error).message}${errors.trim() ? `: ${errors.trim()}` : ''}` };
    }
    const url = `ftp://127.0.0.1:${port}`;
    let stor = 0;
    let retr = 0;
    for (let run = 0; run < h.runs; run++) {
      const name = `bench-${run}.bin`;
      if (options.prime) primePageCache(h.work, h.size);
      const up = await h.measure(undefined, async () => {
        await h.runCurl(['-o', '/dev/null', '-T', file, `${url}/upload/${name}`]);
      });
      const down = await h.measure(undefined, async () => {
        await h.runCurl(['-o', '/dev/null', `${url}/upload/${name}`]);
      });
      rmSync(join(drop, name), { force: true });
      stor = Math.max(stor, rate(h.size, up.ms));
      retr = Math.max(retr, rate(h.size, down.ms));
    }
    return { stor, retr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

export async function ftpBench(h: FtpBenchHelpers): Promise<void> {
  const file = h.payload();
  const fmt = (n: number) => n.toFixed(1);
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const vs = await vsftpd(h, file);
  const reference = 'skipped' in vs ? undefined : vs;
  const rows: string[][] = [];
  const idle: string[] = [];
  for (const driver of h.drivers) {
    const { ftp, direct } = await ours(h, driver, file);
    idle.push(`${driver} ${fmt(ftp.idleRss / MiB)} MiB`);
    const toVsftpd = (ourRate: number, theirs: number | undefined) => (theirs ? [fmt(theirs), ratio(ourRate, theirs), '≥ 0.50'] : ['-', '-', '']);
    rows.push([`STOR (${driver})`, fmt(ftp.stor), fmt(direct.up), ratio(ftp.stor, direct.up), '≥ 0.85', ...toVsftpd(ftp.stor, reference?.stor), `${fmt(ftp.storRss / MiB)} MiB`]);
    rows.push([`RETR (${driver})`, fmt(ftp.retr), fmt(direct.down), ratio(ftp.retr, direct.down), '≥ 0.85', ...toVsftpd(ftp.retr, reference?.retr), `${fmt(ftp.retrRss / MiB)} MiB`]);
  }
  const header = ['ftp', 'ftp MiB/s', 'direct MiB/s', 'ratio', 'aim', 'vsftpd MiB/s', 'ratio to vsftpd', 'aim', 'ftp peak RSS (aim < 150 MiB)'];
  h.printTable(
    `Nondivy bench — FTP service (dist/ftp.mjs, its own process), file ${fmt(h.size / MiB)} MiB, curl in passive mode, best of ${h.runs} runs; ` +
      `direct = the blob store written/read directly (STOR vs write, RETR vs read); vsftpd = anonymous STOR/RETR of the same bytes`,
    header,
    rows,
  );
  console.log(`ftp RSS once started, before any transfer: ${idle.join(', ')}`);
  if ('skipped' in vs) console.log(`vsftpd comparison skipped: ${vs.skipped}`);
}
