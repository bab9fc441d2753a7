/**
 * Ingest benchmark (BENCH_PARTS=ingest): the payload uploaded to a standalone server (fs driver, a
 * fresh one per door) through every door with curl as the client — REST multipart (POST /library),
 * REST raw body (POST /library with application/octet-stream), tus (creation-with-upload: one POST
 * carrying every byte) and FTP STOR — beside a throwaway vsftpd STORing the same bytes with the same
 * curl just before each door. For each: MiB/s,
 * the ratio to vsftpd, the server's CPU-seconds per GiB (its /proc/<pid>/stat utime + stime over the
 * transfer, every thread included) and its peak RSS; then ten concurrent uploads of 100 MiB per door
 * and the peak RSS they reach. The aims of issue 16 are printed beside the figures, met or NOT met.
 * Before each measured transfer (vsftpd's too), as many bytes as it stores are written to a file and
 * deleted (`primePageCache`): every transfer finds the page cache's memory in the same state.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { freePort } from '../tests/helpers/ports.js';
import { diskSyncedRate, freeRange, primePageCache, vsftpd, type FtpBenchHelpers } from './ftp.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** How many uploads run at once in the concurrency series, and the size of each. */
const CONCURRENT = 10;
const CONCURRENT_SIZE = 100 * MiB;
/** Aims (issue 16). */
const AIM_RATIO = 0.5;
const AIM_CPU_PER_GIB = 2;
const AIM_RSS = 150 * MiB;
/** "Flat across ten concurrent uploads": their peak at most this much above one upload's peak. */
const AIM_CONCURRENT_GROWTH = 32 * MiB;

export type IngestBenchHelpers = Pick<
  FtpBenchHelpers,
  'work' | 'size' | 'runs' | 'adminPassword' | 'payload' | 'openSite' | 'startChild' | 'stopChild' | 'startStandalone' | 'measure' | 'runCurl' | 'printTable'
>;

type Door = 'multipart' | 'raw' | 'tus' | 'ftp';
const DOORS: Door[] = ['multipart', 'raw', 'tus', 'ftp'];

interface Server {
  child: ChildProcess;
  api: string;
  ftp: string;
  token: string;
}

/** Clock ticks per second of /proc/<pid>/stat's times. */
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** The CPU time a process has used so far (every thread, user and system), in seconds. */
function cpuSeconds(pid: number): number {
  // Fields after the command (which may hold spaces) in parentheses: state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

const fmt = (n: number) => n.toFixed(1);
const mib = (n: number) => `${fmt(n / MiB)} MiB`;
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');

/** The first `size` bytes of `from` into `to`. */
async function slice(from: string, to: string, size: number): Promise<void> {
  await pipeline(createReadStream(from, { start: 0, end: size - 1, highWaterMark: MiB }), createWriteStream(to));
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function startServer(h: IngestBenchHelpers, env: Record<string, string>): Promise<Server> {
  const ftpPort = await freePort();
  const range = await freeRange(2 * CONCURRENT + 2);
  const { child, port } = await h.startStandalone({
    ...env,
    NONDIVY_FTP_HOST: '127.0.0.1',
    NONDIVY_FTP_PORT: String(ftpPort),
    NONDIVY_FTP_PASV_RANGE: range.join('-'),
    // Ten concurrent uploads from one address: a control and a data connection each.
    NONDIVY_FTP_MAX_CONNECTIONS_PER_IP: String(4 * CONCURRENT),
  });
  const api = `http://127.0.0.1:${port}/api/v1`;
  const login = await fetch(`${api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: h.adminPassword }) });
  if (!login.ok) throw new Error(`login: ${login.status} ${await login.text()}`);
  const { token } = (await login.json()) as { token: string };
  return { child, api, token, ftp: `ftp://admin:${encodeURIComponent(h.adminPassword)}@127.0.0.1:${ftpPort}` };
}

/**
 * One upload of `file` (`size` bytes) through `door` as `name`, checked: the server must say it made
 * an item of that size (REST and tus answer with it, FTP's 226 names where it was stored).
 */
async function upload(h: IngestBenchHelpers, s: Server, door: Door, file: string, size: number, name: string): Promise<string | null> {
  const auth = ['-H', `authorization: Bearer ${s.token}`];
  if (door === 'multipart' || door === 'raw') {
    const args =
      door === 'multipart'
        ? ['-F', `file=@${file};type=video/mp4;filename=${name}`, `${s.api}/library`]
        : ['-X', 'POST', '-T', file, '-H', 'content-type: application/octet-stream', `${s.api}/library?filename=${encodeURIComponent(name)}&kind=video`];
    const { out } = await h.runCurl([...auth, ...args]);
    const item = JSON.parse(out) as { size: number; sha256: string };
    if (item.size !== size) throw new Error(`${door} ${name}: the item has ${item.size} bytes, not ${size}`);
    return item.sha256;
  }
  if (door === 'tus') {
    const { err } = await h.runCurl([
      ...auth, '-v', '-o', '/dev/null', '-X', 'POST', '-T', file,
      '-H', 'tus-resumable: 1.0.0', '-H', `upload-length: ${size}`, '-H', `upload-metadata: filename ${Buffer.from(name).toString('base64')}`,
      '-H', 'content-type: application/offset+octet-stream', `${s.api}/uploads`,
    ]);
    const id = /^< nondivy-item-id: (\S+)/im.exec(err)?.[1];
    if (!id) throw new Error(`tus ${name}: no item made (${err.slice(-300)})`);
    const item = (await (await fetch(`${s.api}/library/${id}`)).json()) as { size: number; sha256: string };
    if (item.size !== size) throw new Error(`tus ${name}: the item has ${item.size} bytes, not ${size}`);
    return item.sha256;
  }
  const { err } = await h.runCurl(['-v', '-o', '/dev/null', '-T', file, `${s.ftp}/upload/${name}`]);
  if (!/^< 226 .*stored as (\S+)/m.test(err)) throw new Error(`STOR ${name}: no 226 naming where it was stored`);
  return null;
}

interface DoorFigures {
  rate: number;
  cpuPerGiB: number;
  peakRss: number;
  /** The disk's rate for bytes written and synced, measured before vsftpd's runs. */
  disk: number;
}

export async function ingestBench(h: IngestBenchHelpers): Promise<void> {
  const file = h.payload();
  const small = join(h.work, 'payload-100m.bin');
  await slice(file, small, Math.min(CONCURRENT_SIZE, h.size));
  const smallSize = Math.min(CONCURRENT_SIZE, h.size);
  const expected = await sha256Of(file);

  const figures = new Map<Door, DoorFigures>();
  const concurrent = new Map<Door, { one: number; ten: number }>();
  const references = new Map<Door, number | null>();
  const idle = new Map<Door, number>();
  let skipped: string | null = null;
  let n = 0;
  // Each door on a server of its own, started afresh (its own Redis and data folder): what one door
  // needs is not mixed with what another left behind (the V8 heap and the C allocator keep memory
  // they once used). vsftpd STORs the same file just before each door: the machine's speed drifts
  // within a run, and the ratio compares figures taken minutes apart at most.
  for (const door of DOORS) {
    const disk = diskSyncedRate(h.work, h.size);
    const vs = await vsftpd(h, file, { prime: true });
    if ('skipped' in vs) skipped = vs.skipped;
    references.set(door, 'skipped' in vs ? null : vs.stor);
    const site = await h.openSite('fs', `ingest-${door}-`);
    await site.store.close();
    const s = await startServer(h, site.env);
    const pid = s.child.pid!;
    try {
      idle.set(door, (await h.measure(pid, () => undefined)).peakRss);
      const f: DoorFigures = { rate: 0, cpuPerGiB: Infinity, peakRss: 0, disk };
      for (let run = 0; run < h.runs; run++) {
        primePageCache(h.work, h.size);
        const cpu0 = cpuSeconds(pid);
        let sha: string | null = null;
        const m = await h.measure(pid, async () => {
          sha = await upload(h, s, door, file, h.size, `ingest-${door}-${++n}.bin`);
        });
        const cpu = cpuSeconds(pid) - cpu0;
        if (sha !== null && sha !== expected) throw new Error(`${door}: the item's SHA-256 ${sha} is not the file's ${expected}`);
        f.rate = Math.max(f.rate, h.size / MiB / (m.ms / 1000));
        f.cpuPerGiB = Math.min(f.cpuPerGiB, cpu / (h.size / GiB));
        f.peakRss = Math.max(f.peakRss, m.peakRss);
      }
      figures.set(door, f);
      primePageCache(h.work, smallSize);
      const one = await h.measure(pid, async () => {
        await upload(h, s, door, small, smallSize, `ingest-one-${door}-${++n}.bin`);
      });
      primePageCache(h.work, CONCURRENT * smallSize);
      const ten = await h.measure(pid, async () => {
        await Promise.all(Array.from({ length: CONCURRENT }, () => upload(h, s, door, small, smallSize, `ingest-ten-${door}-${++n}.bin`)));
      });
      concurrent.set(door, { one: one.peakRss, ten: ten.peakRss });
    } finally {
      await h.stopChild(s.child);
      await site.close();
    }
  }

  const label: Record<Door, string> = {
    multipart: 'REST multipart POST /library',
    raw: 'REST raw body POST /library',
    tus: 'tus POST (creation-with-upload)',
    ftp: 'FTP STOR /upload/',
  };
  const rows = DOORS.map((door) => {
    const f = figures.get(door)!;
    const reference = references.get(door) ?? null;
    const ratio = reference ? f.rate / reference : null;
    return [
      label[door],
      fmt(f.rate),
      reference ? fmt(reference) : '-',
      ratio === null ? '-' : `${ratio.toFixed(2)} (≥ ${AIM_RATIO}: ${met(ratio >= AIM_RATIO)})`,
      `${fmt(f.disk)} (${(f.rate / f.disk).toFixed(2)})`,
      `${f.cpuPerGiB.toFixed(2)} (≤ ${AIM_CPU_PER_GIB}: ${met(f.cpuPerGiB <= AIM_CPU_PER_GIB)})`,
      `${mib(f.peakRss)} (≤ 150: ${met(f.peakRss <= AIM_RSS)})`,
    ];
  });
  h.printTable(
    `Nondivy bench — ingest: file ${fmt(h.size / MiB)} MiB in ${h.work}, curl, best of ${h.runs} runs, a fresh standalone server (fs) per door; ` +
      `vsftpd = anonymous STOR of the same bytes just before each door (it does not fsync; the fs blob store does before an upload is answered); ` +
      `disk = writing and syncing as many bytes (fdatasync) before vsftpd's runs: the ceiling of an upload answered once durable, and the share of it reached`,
    ['upload', 'MiB/s', 'vsftpd STOR MiB/s', 'ratio (aim)', 'disk synced MiB/s (share)', 'server CPU-s/GiB (aim)', 'server peak RSS (aim)'],
    rows,
  );
  h.printTable(
    `Nondivy bench — ingest memory: on the same server after the runs above, one ${fmt(smallSize / MiB)} MiB upload, then ${CONCURRENT} at once, per door`,
    ['upload', 'server RSS once started', 'peak RSS, one', `peak RSS, ${CONCURRENT} at once`, 'aim (≤ 150 MiB, ≤ one + 32 MiB)'],
    DOORS.map((door) => {
      const c = concurrent.get(door)!;
      return [label[door], mib(idle.get(door)!), mib(c.one), mib(c.ten), met(c.ten <= AIM_RSS && c.ten <= c.one + AIM_CONCURRENT_GROWTH)];
    }),
  );
  if (skipped) console.log(`vsftpd comparison skipped: ${skipped}`);
}
