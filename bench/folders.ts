/**
 * Folder benchmark, against a standalone server (its FTP door in the same process) over a library
 * with one folder of BENCH_FOLDER_ITEMS (default 10,000) items and one parent folder of 1,000
 * subfolders (one item each), committed through the state layer as an upload ends:
 * - listing the big folder over FTP (MLSD, basic-ftp as the client, one logged-in session) and over
 *   REST (GET /library?kind&folder, 200 a page, followed to the end), and the parent's subfolders
 *   over REST (GET /library/folders, 1,000 a page): p50/p99 of FOLDER_RUNS runs each, and the
 *   server's peak RSS while they run;
 * - moving the big folder over FTP (RNFR/RNTO as admin, alternating between two names): p50/p99.
 * The issue sets no aims for these: the figures are printed plain.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client } from 'basic-ftp';
import { createLogger } from '@nondivy/log';
import { createRedis, RedisLibraryState, waitForRedis } from '@nondivy/state';
import { keys } from '@nondivy/state/keys';
import { newItemId } from '@nondivy/storage';
import { freePort } from '../tests/helpers/ports.js';
import { percentile, pick, WORDS } from './search.js';

const MiB = 1024 * 1024;
const ITEMS = Number(process.env.BENCH_FOLDER_ITEMS ?? 10_000);
const SUBFOLDERS = 1000;
const RUNS = Number(process.env.BENCH_FOLDER_RUNS ?? 10);
const KIND = 'audio';
const PARENT = 'Parent';
/** The big folder's two names: each move goes from one to the other. */
const NAMES = ['Big Folder', 'Moved/Big Folder'] as const;

export interface FolderBenchHelpers {
  work: string;
  adminPassword: string;
  startRedis(onStart?: (child: ChildProcess) => void): Promise<string>;
  startStandalone(env: Record<string, string>, port?: number): Promise<{ child: ChildProcess; port: number }>;
  stopChild(child: ChildProcess): Promise<void>;
  measure(pid: number | undefined, fn: () => Promise<void> | void): Promise<{ ms: number; peakRss: number }>;
  printTable(title: string, header: string[], rows: string[][]): void;
}

/** Commits one item per entry of `folders` (its folder), 32 at a time, as bench/search.ts commits its items. */
async function commitInto(state: RedisLibraryState, folders: (n: number) => string, count: number, prefix: string): Promise<void> {
  const sha = randomBytes(32).toString('hex');
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < count) {
        const n = next++;
        const lease = `${prefix}-${n}`;
        await state.beginUpload(lease, '{}', 60_000);
        const now = new Date(Date.now() - (count - n) * 1000).toISOString();
        await state.commitUpload({
          leaseId: lease,
          candidateKey: `objects/00/${lease}`,
          item: {
            id: newItemId(),
            title: `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)}`,
            kind: KIND,
            folder: folders(n),
            tags: [],
            description: '',
            filename: `${String(n).padStart(5, '0')} ${pick(WORDS)}.flac`,
            contentType: 'audio/flac',
            size: Math.floor(Math.random() * 1e8),
            sha256: sha,
            createdAt: now,
            updatedAt: now,
            uploadedBy: 'bench',
            downloads: 0,
            meta: {},
          },
        });
      }
    }),
  );
}

/** Runs `fn` RUNS times (after one warm-up run): each run's milliseconds, and the server's peak RSS meanwhile. */
async function timed(h: FolderBenchHelpers, pid: number | undefined, fn: (run: number) => Promise<void>): Promise<{ times: number[]; peakRss: number }> {
  await fn(-1);
  const times: number[] = [];
  let peakRss = 0;
  for (let i = 0; i < RUNS; i++) {
    const m = await h.measure(pid, () => fn(i));
    times.push(m.ms);
    peakRss = Math.max(peakRss, m.peakRss);
  }
  return { times, peakRss };
}

export async function foldersBench(h: FolderBenchHelpers): Promise<void> {
  const log = createLogger('bench', 'silent');
  const started: ChildProcess[] = [];
  const redisUrl = await h.startRedis((c) => started.push(c));
  const redis = createRedis(redisUrl, log);
  let server: ChildProcess | null = null;
  const ftp = new Client(60_000);
  try {
    await waitForRedis(redis, log);
    const state = new RedisLibraryState(redis);
    const t0 = performance.now();
    await commitInto(state, () => NAMES[0], ITEMS, 'big');
    await commitInto(state, (n) => `${PARENT}/sub ${String(n).padStart(4, '0')}`, SUBFOLDERS, 'sub');
    const commitRate = (ITEMS + SUBFOLDERS) / ((performance.now() - t0) / 1000);
    // The items have no bytes: enrichment is marked as caught up, so the catalog's worker leaves them.
    await redis.xgroup('CREATE', keys.libraryEvents, keys.enrichmentGroup, '$', 'MKSTREAM');
    redis.disconnect();

    const ftpPort = await freePort();
    const s = await h.startStandalone({ REDIS_URL: redisUrl, NONDIVY_DATA_DIR: `${h.work}/folders-data`, NONDIVY_FTP_PORT: String(ftpPort) });
    server = s.child;
    const pid = server.pid;
    const api = `http://127.0.0.1:${s.port}/api/v1`;
    await new Promise((r) => setTimeout(r, 1000));
    await ftp.access({ host: '127.0.0.1', port: ftpPort, user: 'admin', password: h.adminPassword });
    const idleRss = rssOf(pid);

    // The big folder's name alternates with each move; the listings run before any move, at NAMES[0].
    const mlsd = await timed(h, pid, async () => {
      const entries = await ftp.list(`/library/${KIND}/${NAMES[0]}`);
      if (entries.length !== ITEMS) throw new Error(`MLSD listed ${entries.length} entries, not ${ITEMS}`);
    });
    const restItems = await timed(h, pid, async () => {
      let cursor: string | null = null;
      let count = 0;
      do {
        const q: URLSearchParams = new URLSearchParams({ kind: KIND, folder: NAMES[0], limit: '200', ...(cursor ? { cursor } : {}) });
        const res = await fetch(`${api}/library?${q}`);
        if (res.status !== 200) throw new Error(`GET /library?${q}: ${res.status}`);
        const page = (await res.json()) as { items: unknown[]; nextCursor: string | null };
        count += page.items.length;
        cursor = page.nextCursor;
      } while (cursor);
      if (count !== ITEMS) throw new Error(`REST listed ${count} items, not ${ITEMS}`);
    });
    const restFolders = await timed(h, pid, async () => {
      let cursor: string | null = null;
      let count = 0;
      do {
        const q: URLSearchParams = new URLSearchParams({ kind: KIND, folder: PARENT, limit: '1000', ...(cursor ? { cursor } : {}) });
        const res = await fetch(`${api}/library/folders?${q}`);
        if (res.status !== 200) throw new Error(`GET /library/folders?${q}: ${res.status}`);
        const page = (await res.json()) as { folders: unknown[]; nextCursor: string | null };
        count += page.folders.length;
        cursor = page.nextCursor;
      } while (cursor);
      if (count !== SUBFOLDERS) throw new Error(`REST listed ${count} subfolders, not ${SUBFOLDERS}`);
    });
    let at = 0;
    const moves = await timed(h, pid, async () => {
      const to = 1 - at;
      await ftp.rename(`/library/${KIND}/${NAMES[at]}`, `/library/${KIND}/${NAMES[to]}`);
      at = to;
    });
    // The folder moved whole: every item where the last move put it.
    const check = await fetch(`${api}/library/folders?${new URLSearchParams({ kind: KIND, folder: NAMES[at] })}`);
    const moved = (await check.json()) as { items: number };
    if (moved.items !== ITEMS) throw new Error(`after the moves, ${NAMES[at]} holds ${moved.items} items, not ${ITEMS}`);

    const ms = (x: number) => x.toFixed(1);
    const row = (what: string, r: { times: number[]; peakRss: number }, per: string) => [
      what,
      ms(percentile(r.times, 50)),
      ms(percentile(r.times, 99)),
      per,
      `${(r.peakRss / MiB).toFixed(1)} MiB`,
    ];
    const perItem = (r: { times: number[] }, n: number) => `${((percentile(r.times, 50) * 1000) / n).toFixed(1)} µs`;
    h.printTable(
      `Nondivy bench — folders: ${ITEMS} items in one folder, ${SUBFOLDERS} subfolders in another (committed at ${commitRate.toFixed(0)} items/s); ${RUNS} runs each after a warm-up; one standalone server, FTP in its process; server RSS once started ${(idleRss / MiB).toFixed(1)} MiB`,
      ['operation', 'p50 ms', 'p99 ms', 'p50 per entry', 'server peak RSS'],
      [
        row(`FTP MLSD of the folder (${ITEMS} entries, basic-ftp)`, mlsd, perItem(mlsd, ITEMS)),
        row(`REST GET /library?kind&folder, 200 a page to the end (${ITEMS / 200} pages)`, restItems, perItem(restItems, ITEMS)),
        row(`REST GET /library/folders of a parent of ${SUBFOLDERS} subfolders`, restFolders, perItem(restFolders, SUBFOLDERS)),
        row(`FTP RNFR/RNTO of the folder of ${ITEMS} items`, moves, perItem(moves, ITEMS)),
      ],
    );
  } finally {
    ftp.close();
    redis.disconnect();
    if (server) await h.stopChild(server);
    for (const c of started.reverse()) await h.stopChild(c);
  }
}

/** A process's resident memory now (0 when it is gone). */
function rssOf(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
