/**
 * `npm run bench`: REST upload and download of one large file through the gateway, beside writing
 * and reading the same bytes straight to the blob store (fs, and s3 against s3rver), and beside nginx
 * serving the same file when nginx is installed. Prints MiB/s and ratios measured in this one run,
 * and the gateway's peak RSS during each transfer. BENCH_SIZE (default 1GiB) sets the file size;
 * BENCH_DRIVERS (default "fs,s3") which drivers to measure. The "ftp" part (bench/ftp.ts) does the
 * same through the FTP service, the "search" part (bench/search.ts) measures the catalogue, the
 * "folders" part (bench/folders.ts) lists and moves a folder of 10,000 items over FTP and REST, the
 * "sharing" part (bench/sharing.ts) device-to-device transfers with the nondivy CLI (direct and
 * relayed) beside a plain HTTP pipe, the "federation" part (bench/federation.ts) federated search
 * latency and cross-site downloads between two linked sites, and the "ingest" part (bench/ingest.ts)
 * uploads through every door (REST multipart and raw body, tus, FTP STOR) beside vsftpd, with the
 * server's CPU-seconds per GiB and its memory under ten concurrent uploads. The "webrelay" part
 * (bench/web-relay.ts) sends the file from one Chromium tab to another on the Nearby view through
 * the relay, beside the CLI-to-CLI relay on the same gateway, with both tabs' memory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { byteSize } from '@nondivy/config';
import { createLogger } from '@nondivy/log';
import { freePort } from '../tests/helpers/ports.js';
import { FsBlobStore, S3BlobStore, type BlobStore } from '@nondivy/storage';
import { randomBytes } from 'node:crypto';
import { federationBench } from './federation.js';
import { foldersBench } from './folders.js';
import { ftpBench } from './ftp.js';
import { ingestBench } from './ingest.js';
import { searchBench } from './search.js';
import { sharingBench } from './sharing.js';
import { webBench } from './web.js';
import { webRelayBench } from './web-relay.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;
const SIZE = byteSize.parse(process.env.BENCH_SIZE ?? '1GiB');
const DRIVERS = (process.env.BENCH_DRIVERS ?? 'fs,s3').split(',').map((d) => d.trim()) as ('fs' | 's3')[];
/** Each figure is the best of this many runs: on a busy 2-core machine noise only ever slows a run. */
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/**
 * Which parts to run: transfers (1 GiB through the gateway), search (catalogue), folders (listing
 * and moving a folder of 10,000 items over FTP and REST), ftp (the FTP service), sharing (device
 * to device), federation (two linked sites), web (the web app), webrelay (browser to browser through
 * the relay, beside the CLI), ingest (uploads through every door beside vsftpd).
 */
const PARTS = (process.env.BENCH_PARTS ?? 'transfer,search,folders,ftp,sharing,federation,web,webrelay,ingest').split(',').map((p) => p.trim());
const SEARCH_ITEMS = Number(process.env.BENCH_SEARCH_ITEMS ?? 100_000);
/**
 * Where the payload and the blobs live: BENCH_DIR, else the system's temporary folder — a disk, as in a
 * deployment. BENCH_DIR=/dev/shm takes the disk out and compares CPU costs alone.
 */
function benchRoot(): string {
  return process.env.BENCH_DIR ?? tmpdir();
}
const work = mkdtempSync(join(benchRoot(), 'nondivy-bench-'));
chmodSync(work, 0o755); // nginx's workers run as an unprivileged user
const children: ChildProcess[] = [];
const log = createLogger('bench', 'silent');
/** The admin account's password on every server the bench starts. */
const ADMIN_PASSWORD = 'bench-password';

const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

function makeFile(path: string, size: number) {
  const block = randomBytes(16 * MiB);
  const fd = openSync(path, 'w');
  for (let written = 0; written < size; ) {
    const n = Math.min(block.length, size - written);
    // Vary each block so no layer can take shortcuts on repeated content.
    block.writeUInt32LE(written / block.length, 0);
    writeSync(fd, block, 0, n);
    written += n;
  }
  closeSync(fd);
}

function startChild(cmd: string, args: string[], env: Record<string, string>, readyPattern: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let ready = false;
    const onData = (d: Buffer) => {
      // Once ready, only the tail is kept (for the error message): a server's request log is long.
      if (ready) {
        out = (out + d).slice(-4000);
        return;
      }
      out += d;
      if (readyPattern.test(out)) {
        ready = true;
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${out.slice(-2000)}`)));
  });
}

/** Stops a child this bench started (by its pid) and waits for it to exit. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** Samples a process's resident memory every 50 ms while `fn` runs; returns fn's duration and the peak. */
async function measure(pid: number | undefined, fn: () => Promise<void> | void): Promise<{ ms: number; peakRss: number }> {
  let peak = 0;
  const sample = () => {
    if (!pid) return;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      /* process gone */
    }
  };
  const timer = setInterval(sample, 50);
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  clearInterval(timer);
  sample();
  return { ms, peakRss: peak };
}

/**
 * curl as the client: one process, no JavaScript on the client side of the measurement. Resolves with
 * what curl wrote to stdout and to stderr (with -v, the server's replies).
 */
function runCurl(args: string[]): Promise<{ out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '--fail', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('exit', (code) => (code === 0 ? resolve({ out, err }) : reject(new Error(`curl ${args.join(' ')}: exit ${code}: ${err.slice(-2000)}`))));
  });
}

const curl = async (args: string[]): Promise<string> => (await runCurl(args)).out;

/** Runs `fn` RUNS times and keeps the fastest run and the highest peak RSS. */
async function best(pid: number | undefined, fn: () => Promise<void>): Promise<{ rate: number; peakRss: number }> {
  let rate = 0;
  let peakRss = 0;
  for (let i = 0; i < RUNS; i++) {
    const m = await measure(pid, fn);
    rate = Math.max(rate, mibps(SIZE, m.ms));
    peakRss = Math.max(peakRss, m.peakRss);
  }
  return { rate, peakRss };
}

async function direct(store: BlobStore, file: string): Promise<{ up: number; down: number }> {
  let key = '';
  const up = await best(undefined, async () => {
    if (key) await store.remove(key);
    const writer = store.begin();
    for await (const chunk of createReadStream(file, { highWaterMark: MiB })) await writer.write(chunk as Buffer);
    await writer.finish();
    key = writer.key;
  });
  const down = await best(undefined, async () => {
    for await (const _chunk of await store.read(key)) {
      /* consume */
    }
  });
  await store.remove(key);
  return { up: up.rate, down: down.rate };
}

/** The direct figures of each driver, measured once per run and shared by the parts that compare to them. */
const directByDriver = new Map<string, { up: number; down: number }>();
async function directFigures(driver: 'fs' | 's3', store: BlobStore, file: string) {
  let figures = directByDriver.get(driver);
  if (!figures) directByDriver.set(driver, (figures = await direct(store, file)));
  return figures;
}

/** The payload: one file of SIZE bytes in the work folder, made on first use. */
let payloadFile = '';
function payload(): string {
  if (!payloadFile) {
    payloadFile = join(work, 'payload.bin');
    makeFile(payloadFile, SIZE);
  }
  return payloadFile;
}

/** A site for one driver: its own Redis, and for s3 its own s3rver; the servers' env and the store opened directly. */
interface Site {
  env: Record<string, string>;
  store: BlobStore;
  /** Closes the store and stops this site's processes. */
  close(): Promise<void>;
}

async function openSite(driver: 'fs' | 's3', prefix = ''): Promise<Site> {
  const data = join(work, `${prefix}data-${driver}`);
  const started: ChildProcess[] = [];
  // A Redis per driver: a site's item store and blob store go together.
  const redisUrl = await startRedis((c) => started.push(c));
  let store: BlobStore;
  const env: Record<string, string> = { REDIS_URL: redisUrl, NONDIVY_DATA_DIR: data, NONDIVY_BLOB_DRIVER: driver };
  if (driver === 'fs') {
    store = new FsBlobStore(join(data, 'blobs'));
  } else {
    const port = await freePort();
    const dir = join(work, `${prefix}s3`);
    spawnSync('mkdir', ['-p', dir]);
    started.push(await startChild(process.execPath, ['--import', 'tsx', 'bench/s3-server.ts', dir, String(port)], {}, /ready/));
    Object.assign(env, { S3_ENDPOINT: `http://127.0.0.1:${port}`, S3_ACCESS_KEY: 'S3RVER', S3_SECRET_KEY: 'S3RVER', S3_BUCKET: 'nondivy' });
    store = await S3BlobStore.create({ endpoint: env.S3_ENDPOINT!, accessKey: 'S3RVER', secretKey: 'S3RVER', bucket: 'nondivy', region: 'us-east-1', partSize: 8 * MiB }, () => undefined);
  }
  await store.init();
  return {
    env,
    store,
    close: async () => {
      await store.close().catch(() => undefined);
      for (const c of started.reverse()) await stopChild(c);
    },
  };
}

/** Prints a titled table: columns padded to their widest cell. */
function printTable(title: string, header: string[], rows: string[][]) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

async function startRedis(onStart?: (child: ChildProcess) => void): Promise<string> {
  const port = await freePort();
  const child = await startChild('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, /Ready to accept/);
  onStart?.(child);
  return `redis://127.0.0.1:${port}`;
}

/**
 * The standalone server as `npm start` runs it (same Node flags), on `port` or a free loopback port;
 * its FTP and discovery front doors on loopback ports of their own unless `env` names them, so that
 * two servers (and anything else on this machine) never compete for the defaults.
 */
async function startStandalone(env: Record<string, string>, port?: number): Promise<{ child: ChildProcess; port: number }> {
  port ??= await freePort();
  // A smaller young generation keeps the resident set lower at no cost in speed.
  const child = await startChild(process.execPath, [...(process.env.BENCH_NODE_FLAGS ?? '--max-semi-space-size=4').split(' ').filter(Boolean), 'dist/standalone.mjs'], {
    NONDIVY_FTP_HOST: '127.0.0.1',
    NONDIVY_FTP_PORT: '0',
    NONDIVY_DISCOVERY_HOST: '127.0.0.1',
    NONDIVY_DISCOVERY_PORT: '0',
    ...env,
    // As deployed: info, which also logs each request (and the ready line this waits for).
    LOG_LEVEL: 'info',
    NONDIVY_HTTP_HOST: '127.0.0.1',
    NONDIVY_HTTP_PORT: String(port),
    NONDIVY_CATALOG_PORT: '0',
    NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD,
  }, /is ready|"level":50/);
  return { child, port };
}

async function gateway(env: Record<string, string>, file: string) {
  const { child: server, port } = await startStandalone({ ...env, NONDIVY_GUEST_UPLOAD: '1' });
  await new Promise((r) => setTimeout(r, 500));
  const api = `http://127.0.0.1:${port}/api/v1`;
  let id = '';
  // Later runs store equal bytes: they take the deduplicating path, which also deletes their copy.
  const up = await best(server.pid, async () => {
    id = (JSON.parse(await curl(['-F', `file=@${file};type=video/mp4`, `${api}/library`])) as { id: string }).id;
  });
  await curl(['-o', '/dev/null', `${api}/library/${id}/content`]); // warm-up, as for nginx
  const down = await best(server.pid, async () => {
    await curl(['-o', '/dev/null', `${api}/library/${id}/content`]);
  });
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  return { up: up.rate, down: down.rate, upRss: up.peakRss, downRss: down.peakRss };
}

async function nginx(file: string): Promise<number | null> {
  if (spawnSync('nginx', ['-v']).error) return null;
  const port = await freePort();
  const dir = join(work, 'nginx');
  spawnSync('mkdir', ['-p', dir]);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${port}; location / { root ${work}; } } }\n`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
  children.push(child);
  await new Promise((r) => setTimeout(r, 500));
  const name = file.slice(work.length + 1);
  await curl(['-o', '/dev/null', `http://127.0.0.1:${port}/${name}`]); // warm the page cache the same way
  const { rate } = await best(undefined, async () => {
    await curl(['-o', '/dev/null', `http://127.0.0.1:${port}/${name}`]);
  });
  child.kill('SIGTERM');
  return rate;
}

async function main() {
  if (PARTS.includes('transfer')) await transfers();
  if (PARTS.includes('ftp')) {
    await ftpBench({
      work, size: SIZE, runs: RUNS, drivers: DRIVERS, adminPassword: ADMIN_PASSWORD,
      payload, openSite, directFigures, startChild, stopChild, startStandalone, measure, runCurl, printTable,
    });
  }
  if (PARTS.includes('search')) {
    const r = await searchBench(work, SEARCH_ITEMS, { startRedis, startStandalone });
    console.log(`\nNondivy bench — catalogue of ${SEARCH_ITEMS} items`);
    console.log(`commit (item + index + event, 32 concurrent): ${r.indexRate.toFixed(0)} items/s`);
    console.log('query (distinct, uncached)                p50 ms  p99 ms   aim p99 < 10');
    for (const row of r.rows) console.log(`${row[0]!.padEnd(40)}  ${row[1]!.padStart(6)}  ${row[2]!.padStart(6)}`);
    console.log(`through the gateway, 32 concurrent clients: ${r.qps.toFixed(0)} queries/s (aim 1000), ${r.errors} errors`);
  }
  const shared = { work, size: SIZE, runs: RUNS, adminPassword: ADMIN_PASSWORD, payload, startRedis, startStandalone, stopChild, measure, runCurl, printTable };
  if (PARTS.includes('folders')) await foldersBench(shared);
  if (PARTS.includes('sharing')) await sharingBench(shared);
  if (PARTS.includes('federation')) await federationBench(shared);
  if (PARTS.includes('web')) await webBench(shared);
  if (PARTS.includes('webrelay')) await webRelayBench(shared);
  if (PARTS.includes('ingest')) await ingestBench({ ...shared, openSite, startChild });
}

async function transfers() {
  const file = payload();
  const rows: string[][] = [];
  const fmt = (n: number) => n.toFixed(1);
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const nginxRate = await nginx(file);
  let fsDown = 0;

  for (const driver of DRIVERS) {
    const site = await openSite(driver);
    const d = await directFigures(driver, site.store, file);
    const g = await gateway(site.env, file);
    await site.close();
    if (driver === 'fs') fsDown = g.down;
    rows.push([`upload (${driver})`, fmt(g.up), fmt(d.up), ratio(g.up, d.up), '≥ 0.85', `${fmt(g.upRss / MiB)} MiB`]);
    rows.push([`download (${driver})`, fmt(g.down), fmt(d.down), ratio(g.down, d.down), '≥ 0.90', `${fmt(g.downRss / MiB)} MiB`]);
  }
  if (nginxRate && fsDown) rows.push(['download (fs) vs nginx', fmt(fsDown), fmt(nginxRate), ratio(fsDown, nginxRate), '≥ 0.60', '']);

  const header = ['transfer', 'gateway MiB/s', 'baseline MiB/s', 'ratio', 'aim', 'gateway peak RSS'];
  printTable(
    `Nondivy bench — file ${fmt(SIZE / MiB)} MiB in ${work}, best of ${RUNS} runs; baseline = the blob store written/read directly (nginx for the last row)${nginxRate ? '' : '; nginx not installed'}`,
    header,
    rows,
  );
  void log;
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  rmSync(work, { recursive: true, force: true });
}
