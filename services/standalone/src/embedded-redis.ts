import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@nondivy/log';
import { freeLoopbackPort } from '@nondivy/runtime';

export interface EmbeddedRedis {
  url: string;
  stop(): Promise<void>;
}

export class RedisNotInstalledError extends Error {
  constructor() {
    super(
      'No Redis to use: REDIS_URL is not set and `redis-server` is not installed. ' +
        'Install it (Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`) or set REDIS_URL=redis://host:6379.',
    );
  }
}

/** Another live Nondivy already runs the embedded Redis of this data folder. */
export class DataDirInUseError extends Error {
  constructor(dir: string, pid: number) {
    super(`The data folder ${dir} is in use by another Nondivy server (process ${pid}). Stop it first, or give this one another NONDIVY_DATA_DIR.`);
  }
}

/** Who runs the embedded Redis of a data folder: written at start, removed at a clean stop. */
interface Owner {
  redisPid: number;
  parentPid: number;
}

const OWNER_FILE = 'nondivy-embedded.json';

/** The command line of a live process, or null when there is no such process (Linux /proc; elsewhere a signal probe). */
function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    if (process.platform === 'linux') return null;
    try {
      process.kill(pid, 0);
      return '';
    } catch {
      return null;
    }
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (commandLine(pid) === null) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return commandLine(pid) === null;
}

/**
 * Makes sure no other redis-server runs on `dir`. A Redis whose Nondivy still lives means the folder is
 * in use: refused. A Redis left behind by a Nondivy that died (killed before it could stop it) is shut
 * down cleanly (SIGTERM: it finishes writing its append-only file) before a new one starts on the folder.
 */
async function takeOver(dir: string, log: Logger): Promise<void> {
  let owner: Owner;
  try {
    owner = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as Owner;
  } catch {
    return; // never started here, or stopped cleanly
  }
  const redisAlive = Number.isInteger(owner.redisPid) && /redis-server/.test(commandLine(owner.redisPid) ?? '');
  if (!redisAlive) return;
  const parent = Number.isInteger(owner.parentPid) ? commandLine(owner.parentPid) : null;
  if (parent !== null && owner.parentPid !== process.pid && /node|nondivy/.test(parent)) throw new DataDirInUseError(dir, owner.parentPid);
  log.warn({ pid: owner.redisPid, dir }, 'stopping the embedded redis-server left behind by a server that did not stop');
  process.kill(owner.redisPid, 'SIGTERM');
  if (!(await waitGone(owner.redisPid, 10_000))) {
    process.kill(owner.redisPid, 'SIGKILL');
    await waitGone(owner.redisPid, 2000);
  }
}

/** `setpriv --pdeathsig` (util-linux) makes the kernel signal the child when this process dies, even by SIGKILL. */
function parentDeathWrapper(): string[] {
  if (process.platform !== 'linux') return [];
  const probe = spawnSync('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' });
  return probe.status === 0 ? ['setpriv', '--pdeathsig', 'TERM', '--'] : [];
}

/**
 * Starts a private `redis-server` for standalone mode: loopback only, on a free port, persisting to
 * `<dataDir>/redis` with the append-only file on, and stopped (with a final save) on exit. It cannot
 * outlive this process: on Linux the kernel sends it SIGTERM when this process dies, however it dies
 * (parent-death signal); and a Redis still running on the folder from an earlier server is taken over
 * (stopped cleanly) or, when that server is still alive, start-up is refused.
 */
export async function startEmbeddedRedis(dataDir: string, log: Logger): Promise<EmbeddedRedis> {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) throw new RedisNotInstalledError();
  const dir = join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  await takeOver(dir, log);
  const port = await freeLoopbackPort();
  const wrapper = parentDeathWrapper();
  if (wrapper.length === 0) log.warn('setpriv is not available: the embedded redis-server would outlive a killed server (the next start stops it)');
  const argv = [
    ...wrapper,
    'redis-server',
    ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'warning'],
  ];
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const ownerFile = join(dir, OWNER_FILE);
  writeFileSync(ownerFile, JSON.stringify({ redisPid: child.pid ?? 0, parentPid: process.pid, port } satisfies Owner & { port: number }));
  let output = '';
  child.stdout?.on('data', (d) => (output = (output + String(d)).slice(-4000)));
  child.stderr?.on('data', (d) => (output = (output + String(d)).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  // Ready when it accepts connections, or failed when it exits first.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const status = await Promise.race([exited.then((c) => ({ exited: c })), new Promise((r) => setTimeout(r, 100)).then(() => null)]);
    if (status) {
      rmSync(ownerFile, { force: true });
      throw new Error(`redis-server exited (code ${status.exited}): ${output.trim()}`);
    }
    const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (ping.stdout?.trim() === 'PONG') break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(ownerFile, { force: true });
      throw new Error(`redis-server did not start: ${output.trim()}`);
    }
  }
  log.info({ port, dir, pid: child.pid }, 'started the embedded redis-server');
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(ownerFile, { force: true });
    },
  };
}
