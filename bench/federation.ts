/**
 * Federation benchmark: two sites on this machine (A and B: each a standalone server with its own
 * Redis and data folder, reachable at its loopback URL), linked through the real API, each with
 * ITEMS catalogue items. Measures, through A's gateway, the latency of distinct queries answered by A
 * alone and federated (A and B), and the payload downloaded from B through A (cross-site) beside the
 * same bytes downloaded from B's own gateway, in the same run.
 */
import type { SharingBenchHelpers } from './sharing.js';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '@nondivy/log';
import { freePort } from '../tests/helpers/ports.js';
import { createRedis, RedisLibraryState, waitForRedis } from '@nondivy/state';
import { keys } from '@nondivy/state/keys';
import { commitItems, percentile, pick, WORDS } from './search.js';

const MiB = 1024 * 1024;
/** Catalogue items per site. */
const ITEMS = 2000;
/**
 * Distinct queries per scope (local, federated), after WARMUP of each. A linked site takes 600
 * requests a minute from one address: the federated queries, the downloads' calls and the link's
 * pings stay below that, so that every federated answer can include B's.
 */
const QUERIES = 500;
const WARMUP = 20;

/** The sharing part's helpers, and curl with its error output. */
export interface FederationBenchHelpers extends SharingBenchHelpers {
  runCurl(args: string[]): Promise<{ out: string; err: string }>;
}

interface Site {
  name: string;
  api: string;
  child: ChildProcess;
  /** The admin's bearer token. */
  token: string;
  /** Requests answered so far on `route` (from the site's /metrics), with a 2xx status. */
  served(route: string): Promise<number>;
}

const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

/**
 * One site: its Redis filled with ITEMS items first (the transaction an upload ends with; no bytes,
 * so enrichment is marked as caught up), then the standalone server on a port known in advance, so
 * that its public URL (how the other site reaches it) can be given at start.
 */
async function startSite(h: FederationBenchHelpers, name: string, started: ChildProcess[]): Promise<Site> {
  const log = createLogger('bench', 'silent');
  const redisUrl = await h.startRedis((c) => started.push(c));
  const redis = createRedis(redisUrl, log);
  try {
    await waitForRedis(redis, log);
    await commitItems(new RedisLibraryState(redis), ITEMS);
    await redis.xgroup('CREATE', keys.libraryEvents, keys.enrichmentGroup, '$', 'MKSTREAM');
  } finally {
    redis.disconnect();
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { child } = await h.startStandalone(
    { REDIS_URL: redisUrl, NONDIVY_DATA_DIR: join(h.work, `federation-${name}`), NONDIVY_SITE_NAME: name, NONDIVY_PUBLIC_URL: url },
    port,
  );
  started.push(child);
  const api = `${url}/api/v1`;
  const res = await fetch(`${api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: h.adminPassword }) });
  if (res.status !== 200) throw new Error(`site ${name}: login: ${res.status} ${await res.text()}`);
  const token = ((await res.json()) as { token: string }).token;
  const served = async (route: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    let n = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('http_requests_total{') && line.includes(`route="${route}"`) && /status="2\d\d"/.test(line)) n += Number(line.split(' ').pop());
    }
    return n;
  };
  return { name, api, child, token, served };
}

/** A JSON call with the site's admin token; throws unless the status is `status`. */
async function call<T>(site: Site, method: string, path: string, json?: unknown, status = 200): Promise<T> {
  const res = await fetch(`${site.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${site.token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: json !== undefined ? JSON.stringify(json) : undefined,
  });
  const text = await res.text();
  if (res.status !== status) throw new Error(`site ${site.name}: ${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** 2 × (QUERIES + WARMUP) distinct queries: a word and the first letters of another (a prefix). */
function distinctQueries(): string[] {
  const set = new Set<string>();
  while (set.size < 2 * (QUERIES + WARMUP)) set.add(`${pick(WORDS)} ${pick(WORDS).slice(0, 2 + Math.floor(Math.random() * 3))}`);
  return [...set];
}

export async function federationBench(h: FederationBenchHelpers): Promise<void> {
  const started: ChildProcess[] = [];
  const fmt = (n: number) => n.toFixed(1);
  try {
    const a = await startSite(h, 'A', started);
    const b = await startSite(h, 'B', started);

    // Link: A invites, B uses the invite.
    const { code } = await call<{ code: string }>(a, 'POST', '/federation/invites', undefined, 201);
    await call(b, 'POST', '/federation/links', { code }, 201);
    const { links } = await call<{ links: { siteId: string; name: string }[] }>(a, 'GET', '/federation/links');
    const bId = links.find((l) => l.name === 'B')?.siteId;
    if (!bId) throw new Error(`site A does not list B among its links: ${JSON.stringify(links)}`);

    // 1. Latency: distinct queries, one at a time, local and federated taking turns (no query is
    // asked twice, so no answer comes from a cache); every federated answer must include B's.
    const queries = distinctQueries();
    const times = { local: [] as number[], federated: [] as number[] };
    let remoteFailures = 0;
    let remoteItems = 0;
    for (let i = 0; i < QUERIES + WARMUP; i++) {
      for (const scope of ['local', 'federated'] as const) {
        const q = queries[2 * i + (scope === 'local' ? 0 : 1)]!;
        const t = performance.now();
        const res = await fetch(`${a.api}/library?q=${encodeURIComponent(q)}&limit=20${scope === 'federated' ? '&scope=federated' : ''}`);
        const body = (await res.json()) as { items: { site?: string }[]; sites?: { siteId: string; ok: boolean }[] };
        const ms = performance.now() - t;
        if (res.status !== 200) throw new Error(`site A: search ${scope} "${q}": ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
        if (scope === 'federated') {
          if (!body.sites?.some((s) => s.siteId === bId && s.ok)) remoteFailures++;
          remoteItems += body.items.filter((it) => it.site === bId).length;
        }
        if (i >= WARMUP) times[scope].push(ms);
      }
    }
    const p = (scope: 'local' | 'federated', q: number) => percentile(times[scope], q);

    // 2. Download: the payload uploaded to B only (A holds no copy, so A must stream B's bytes).
    const file = h.payload();
    const uploaded = JSON.parse((await h.runCurl(['-H', `authorization: Bearer ${b.token}`, '-F', `file=@${file};type=application/octet-stream`, `${b.api}/library`])).out) as { id: string };
    const localUrl = `${b.api}/library/${uploaded.id}/content`;
    const remoteUrl = `${a.api}/sites/${bId}/library/${uploaded.id}/content`;
    const REMOTE_ROUTE = '/federation/v1/library/:id/content';
    const servedBefore = await b.served(REMOTE_ROUTE);
    // Warm-up: the page cache and both paths, the same way.
    await h.runCurl(['-o', '/dev/null', localUrl]);
    await h.runCurl(['-o', '/dev/null', remoteUrl]);
    let local = 0;
    let remote = 0;
    let localRss = 0;
    let aRss = 0;
    let bRss = 0;
    const aIdle = (await h.measure(a.child.pid, () => undefined)).peakRss;
    for (let run = 0; run < h.runs; run++) {
      const l = await h.measure(b.child.pid, async () => {
        await h.runCurl(['-o', '/dev/null', localUrl]);
      });
      local = Math.max(local, rate(h.size, l.ms));
      localRss = Math.max(localRss, l.peakRss);
      // B's memory is sampled over the same span as A's.
      let release = () => {};
      const bDuring = h.measure(b.child.pid, () => new Promise<void>((r) => (release = r)));
      const r = await h.measure(a.child.pid, async () => {
        await h.runCurl(['-o', '/dev/null', remoteUrl]);
      });
      release();
      bRss = Math.max(bRss, (await bDuring).peakRss);
      remote = Math.max(remote, rate(h.size, r.ms));
      aRss = Math.max(aRss, r.peakRss);
    }
    const servedByB = (await b.served(REMOTE_ROUTE)) - servedBefore;
    if (servedByB < h.runs + 1) throw new Error(`B served its item's bytes to A ${servedByB} times for ${h.runs + 1} cross-site downloads: A answered from elsewhere`);

    console.log(
      `\nNondivy bench — federation: sites A and B on loopback (each a standalone server with its own Redis and data folder), linked through the API, ${ITEMS} catalogue items each`,
    );
    h.printTable(
      `search through A's gateway: ${QUERIES} distinct queries per scope (a word and a prefix, limit 20), one at a time, local and federated taking turns, after ${WARMUP} of each`,
      ['query', 'p50 ms', 'p99 ms', 'aim'],
      [
        ['local only (A)', p('local', 50).toFixed(2), p('local', 99).toFixed(2), ''],
        ['federated (A + B)', p('federated', 50).toFixed(2), p('federated', 99).toFixed(2), ''],
        ['overhead (federated − local)', (p('federated', 50) - p('local', 50)).toFixed(2), (p('federated', 99) - p('local', 99)).toFixed(2), 'p99 ≤ 20'],
      ],
    );
    console.log(`  federated answers without B's part: ${remoteFailures} of ${QUERIES + WARMUP}; items from B in them: ${remoteItems}`);
    console.log(`  the overhead is the difference of the two percentiles (different queries of the same shape); a p99 of ${QUERIES} rests on its ${Math.ceil(QUERIES / 100)} slowest`);
    h.printTable(
      `download of one ${fmt(h.size / MiB)} MiB file held by B only (A holds no copy: B's own gateway served its bytes to A ${servedByB} times), curl -o /dev/null, best of ${h.runs} runs, after one warm-up of each`,
      ['download', 'MiB/s', 'baseline MiB/s', 'ratio', 'aim', 'peak RSS'],
      [
        ['local (from B\'s gateway)', fmt(local), '', '', '', `B ${fmt(localRss / MiB)} MiB`],
        ['cross-site (from A\'s gateway, B → A)', fmt(remote), fmt(local), (remote / local).toFixed(2), '≥ 0.80', `A ${fmt(aIdle / MiB)} → ${fmt(aRss / MiB)} MiB, B ${fmt(bRss / MiB)} MiB`],
      ],
    );
  } finally {
    for (const c of started.reverse()) await h.stopChild(c);
    for (const name of ['A', 'B']) rmSync(join(h.work, `federation-${name}`), { recursive: true, force: true });
  }
}
