/**
 * Device-to-device benchmark: the payload sent from one `nondivy` CLI process (`send`) to another
 * (`receive --once --yes`) through one standalone server, directly (the receiver's own endpoint) and
 * relayed (the gateway pipes the sender's PUT into the receiver's GET), beside a plain HTTP pipe
 * between two Node processes doing the receiver's work (one PUT; write, SHA-256 and fsync of the
 * file). Receivers write into the bench's work folder (BENCH_DIR). Prints MiB/s for three spans of
 * each transfer, the ratios measured in this run, and the gateway's resident memory before and
 * during the relayed transfers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MiB = 1024 * 1024;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'clients/cli/bin/nondivy.mjs');
/** How often the receiving folder is looked at, to time the bytes' arrival on disk. */
const WATCH_MS = 5;

export interface SharingBenchHelpers {
  work: string;
  size: number;
  runs: number;
  adminPassword: string;
  payload(): string;
  startRedis(onStart?: (child: ChildProcess) => void): Promise<string>;
  startStandalone(env: Record<string, string>, port?: number): Promise<{ child: ChildProcess; port: number }>;
  stopChild(child: ChildProcess): Promise<void>;
  measure(pid: number | undefined, fn: () => Promise<void> | void): Promise<{ ms: number; peakRss: number }>;
  printTable(title: string, header: string[], rows: string[][]): void;
}

/** A child process of this part: its output so far and its exit. */
interface Proc {
  child: ChildProcess;
  out(): string;
  err(): string;
  done: Promise<number | null>;
}

/** The three spans of one transfer, in ms (null: not observed). */
export interface Spans {
  /** The sender's start to both processes' exit. */
  total: number;
  /** The sender's registration with the gateway (its first request, made once the file is hashed) to both exits. */
  afterHash: number | null;
  /** The partial file's creation in the receiving folder to the verified file in place. */
  onDisk: number | null;
}

/**
 * The plain pipe's receiver: one PUT, written under a temporary name while hashed (one chunk at a
 * time, as the CLI's receiver does), fsynced, renamed; prints the digest and exits.
 */
const PIPE_RECEIVER = `
const http = require('node:http');
const { createHash } = require('node:crypto');
const { open, rename } = require('node:fs/promises');
const dir = process.argv[1];
const server = http.createServer({ requestTimeout: 0 }, async (req, res) => {
  const temp = dir + '/.payload.bin.part';
  const hash = createHash('sha256');
  const file = await open(temp, 'w');
  let bytes = 0;
  for await (const chunk of req) {
    hash.update(chunk);
    let offset = 0;
    while (offset < chunk.length) offset += (await file.write(chunk, offset, chunk.length - offset)).bytesWritten;
    bytes += chunk.length;
  }
  await file.sync();
  await file.close();
  await rename(temp, dir + '/payload.bin');
  res.writeHead(204).end();
  process.stdout.write(JSON.stringify({ bytes, sha256: hash.digest('hex') }) + '\\n');
  server.close();
});
server.listen(0, '127.0.0.1', () => process.stdout.write('listening ' + server.address().port + '\\n'));
`;

/** The plain pipe's sender: the file streamed as one PUT (256 KiB reads, as the CLI's sender). */
const PIPE_SENDER = `
const http = require('node:http');
const fs = require('node:fs');
const { pipeline } = require('node:stream/promises');
const [path, url] = process.argv.slice(1);
const fail = (err) => { process.stderr.write(String(err && err.message || err) + '\\n'); process.exit(1); };
const req = http.request(url, { method: 'PUT', agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': String(fs.statSync(path).size) } });
req.on('response', (res) => { res.resume(); res.on('end', () => process.exit(res.statusCode === 204 ? 0 : 1)); });
req.on('error', fail);
pipeline(fs.createReadStream(path, { highWaterMark: 256 * 1024 }), req).catch(fail);
`;

/** MiB per second. */
export const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SHA-256 of a file, read in 1 MiB chunks. */
export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Times the bytes' arrival in `dir`: from the first file whose name ends in `part` (the receiver's
 * partial file, created when the bytes start) to `final` appearing (verified, fsynced, in place).
 */
function watchArrival(dir: string, final: string): { stop(): number | null } {
  let first: number | null = null;
  let last: number | null = null;
  const timer = setInterval(() => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    if (first === null && names.some((n) => n.endsWith('part'))) first = performance.now();
    if (last === null && names.includes(final)) last = performance.now();
  }, WATCH_MS);
  return {
    stop() {
      clearInterval(timer);
      return first !== null && last !== null ? last - first : null;
    },
  };
}

/** One CLI transfer's spans, with the gateway's RSS before it and its peak during it. */
export type CliSpans = Spans & { peakRss: number; rssBefore: number };

/**
 * The sharing part's set-up, also used by the webrelay part: a standalone server (the gateway, with
 * its own Redis and data folder under `base`) and the admin's token; CLI transfers of the payload
 * (direct or relayed, each checked) and the plain pipe; `close` stops every process it started and
 * removes `base`.
 */
export interface SharingRig {
  /** The gateway's address, e.g. http://127.0.0.1:1234. */
  server: string;
  gateway: ChildProcess;
  token: string;
  /** The payload's SHA-256. */
  digest: string;
  /** Where receivers write (and everything else of this rig lives). */
  base: string;
  cliTransfer(route: 'direct' | 'relay', run: number): Promise<CliSpans>;
  pipeTransfer(run: number): Promise<Spans>;
  close(): Promise<void>;
}

export async function openSharingRig(h: SharingBenchHelpers, base: string): Promise<SharingRig> {
  const file = h.payload();
  mkdirSync(base, { recursive: true });
  const procs = new Set<Proc>();
  const started: ChildProcess[] = [];

  const spawnProc = (args: string[], env: Record<string, string>): Proc => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-8000)));
    const p: Proc = { child, out: () => out, err: () => err, done: new Promise((r) => child.once('exit', (code) => r(code))) };
    procs.add(p);
    void p.done.then(() => procs.delete(p));
    return p;
  };
  /**
   * Both processes' exits. When one fails, the other gets 15 s to notice before it is stopped; and
   * neither may take longer than a transfer at 10 MiB/s plus two minutes.
   */
  const bothExit = (sender: Proc, receiver: Proc): Promise<[number | null, number | null]> => {
    const stop = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null && p.child.kill('SIGTERM');
    for (const [p, other] of [[sender, receiver], [receiver, sender]] as const) {
      void p.done.then((code) => code !== 0 && setTimeout(() => stop(other), 15_000).unref());
    }
    const limit = setTimeout(() => (stop(sender), stop(receiver)), 120_000 + (h.size / (10 * MiB)) * 1000);
    return Promise.all([sender.done, receiver.done]).finally(() => clearTimeout(limit));
  };
  const failed = (what: string, p: Proc, code: number | null) => new Error(`${what} exited ${code}: ${p.err().trim().slice(-2000) || p.out().trim().slice(-2000)}`);

  const close = async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    await Promise.all([...procs].map((p) => p.done));
    for (const c of started.reverse()) await h.stopChild(c);
    rmSync(base, { recursive: true, force: true });
  };

  try {
    const digest = await sha256Of(file);

    // The gateway: a standalone server with its own Redis. Its log says when each device registers.
    const redisUrl = await h.startRedis((c) => started.push(c));
    const { child: gateway, port } = await h.startStandalone({ REDIS_URL: redisUrl, NONDIVY_DATA_DIR: join(base, 'data') });
    started.push(gateway);
    const registered = new Map<string, number>();
    let logTail = '';
    gateway.stdout!.on('data', (d: Buffer) => {
      const lines = (logTail + d).split('\n');
      logTail = lines.pop()!;
      for (const line of lines) {
        if (!line.includes('"device online"')) continue;
        try {
          const entry = JSON.parse(line) as { name?: string; time?: string };
          if (entry.name && entry.time) registered.set(entry.name, Date.parse(entry.time));
        } catch {
          /* not a log line */
        }
      }
    });
    const server = `http://127.0.0.1:${port}`;
    const api = `${server}/api/v1`;
    const login = await fetch(`${api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: h.adminPassword }) });
    if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`);
    const token = ((await login.json()) as { token: string }).token;
    const rssOf = async (pid: number | undefined) => (await h.measure(pid, () => undefined)).peakRss;

    const cliEnv = (device: string) => {
      const home = join(base, `home-${device}`);
      mkdirSync(home, { recursive: true });
      return { NONDIVY_SERVER: server, NONDIVY_TOKEN: token, NONDIVY_DEVICE: device, XDG_CONFIG_HOME: join(home, '.config'), HOME: home };
    };
    const waitForDevice = async (name: string, p: Proc) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        if (p.child.exitCode !== null || p.child.signalCode !== null) throw failed(`the receiver ${name}`, p, p.child.exitCode);
        const res = await fetch(`${api}/devices`, { headers: { authorization: `Bearer ${token}` } });
        const { devices } = (await res.json()) as { devices: { name: string }[] };
        if (devices.some((d) => d.name === name)) return;
        if (Date.now() > deadline) throw new Error(`the receiver ${name} did not register within 20 s`);
        await sleep(50);
      }
    };

    /** One CLI transfer of the payload: a receiver (its own device), then a sender; both must succeed. */
    const cliTransfer = async (route: 'direct' | 'relay', run: number): Promise<CliSpans> => {
      const dir = join(base, `received-${route}-${run}`);
      mkdirSync(dir, { recursive: true });
      const receiverName = `bench-receiver-${route}-${run}`;
      const senderName = `bench-sender-${route}-${run}`;
      try {
        const receiver = spawnProc(
          [CLI, 'receive', '--dir', dir, '--yes', '--once', '--json', '--listen', '127.0.0.1:0', ...(route === 'relay' ? ['--advertise-url', 'http://127.0.0.1:1'] : [])],
          cliEnv(receiverName),
        );
        await waitForDevice(receiverName, receiver);
        const rssBefore = await rssOf(gateway.pid);
        let total = 0;
        let t0 = 0;
        let t1 = 0;
        let onDisk: number | null = null;
        let senderOut = '';
        const m = await h.measure(gateway.pid, async () => {
          const watch = watchArrival(dir, 'payload.bin');
          const start = performance.now();
          t0 = Date.now();
          const sender = spawnProc([CLI, 'send', file, '--to', receiverName, '--json'], cliEnv(senderName));
          const [sent, received] = await bothExit(sender, receiver);
          total = performance.now() - start;
          t1 = Date.now();
          onDisk = watch.stop();
          if (sent !== 0) throw failed('nondivy send', sender, sent);
          if (received !== 0) throw failed('nondivy receive', receiver, received);
          senderOut = sender.out();
        });
        const answer = JSON.parse(senderOut.trim().split('\n').pop()!) as { state: string; route: string };
        if (answer.state !== 'completed' || answer.route !== route) throw new Error(`nondivy send: expected a completed ${route} transfer, got ${JSON.stringify(answer)}`);
        if (!receiver.out().includes('"event":"received"')) throw new Error(`nondivy receive did not report the file received: ${receiver.out().slice(-2000)}`);
        const reg = registered.get(senderName);
        const afterHash = reg !== undefined && reg >= t0 && reg <= t1 ? t1 - reg : null;
        return { total, afterHash, onDisk, peakRss: m.peakRss, rssBefore };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };

    /** One plain pipe transfer: the receiver listening, then the sender's PUT. */
    const pipeTransfer = async (run: number): Promise<Spans> => {
      const dir = join(base, `received-plain-${run}`);
      mkdirSync(dir, { recursive: true });
      try {
        const receiver = spawnProc(['-e', PIPE_RECEIVER, dir], {});
        const deadline = Date.now() + 10_000;
        let pipePort = 0;
        while (!pipePort) {
          pipePort = Number(/listening (\d+)/.exec(receiver.out())?.[1] ?? 0);
          if (receiver.child.exitCode !== null) throw failed('the plain receiver', receiver, receiver.child.exitCode);
          if (Date.now() > deadline) throw new Error('the plain receiver did not listen within 10 s');
          if (!pipePort) await sleep(10);
        }
        const watch = watchArrival(dir, 'payload.bin');
        const start = performance.now();
        const sender = spawnProc(['-e', PIPE_SENDER, file, `http://127.0.0.1:${pipePort}/payload.bin`], {});
        const [sent, received] = await bothExit(sender, receiver);
        const total = performance.now() - start;
        const onDisk = watch.stop();
        if (sent !== 0) throw failed('the plain sender', sender, sent);
        if (received !== 0) throw failed('the plain receiver', receiver, received);
        const result = JSON.parse(/^\{.*\}$/m.exec(receiver.out())![0]) as { bytes: number; sha256: string };
        if (result.bytes !== h.size || result.sha256 !== digest) throw new Error(`the plain pipe delivered ${result.bytes} bytes with SHA-256 ${result.sha256}`);
        // The plain sender does not hash: its whole span is already "after hashing".
        return { total, afterHash: total, onDisk };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };

    return { server, gateway, token, digest, base, cliTransfer, pipeTransfer, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export async function sharingBench(h: SharingBenchHelpers): Promise<void> {
  const rig = await openSharingRig(h, join(h.work, 'sharing'));
  const { base, cliTransfer, pipeTransfer } = rig;
  try {
    // Best of RUNS per span; the three kinds take turns, so a disturbance hits them alike.
    const bestOf = { plain: [0, 0, 0], direct: [0, 0, 0], relay: [0, 0, 0] };
    const keep = (key: keyof typeof bestOf, s: Spans) => {
      const r = bestOf[key];
      r[0] = Math.max(r[0]!, rate(h.size, s.total));
      if (s.afterHash) r[1] = Math.max(r[1]!, rate(h.size, s.afterHash));
      if (s.onDisk) r[2] = Math.max(r[2]!, rate(h.size, s.onDisk));
    };
    let relayRssBefore = 0;
    let relayPeak = 0;
    let senderHashMs = Infinity;
    for (let run = 0; run < h.runs; run++) {
      keep('plain', await pipeTransfer(run));
      const d = await cliTransfer('direct', run);
      keep('direct', d);
      if (d.afterHash !== null) senderHashMs = Math.min(senderHashMs, d.total - d.afterHash);
      const r = await cliTransfer('relay', run);
      keep('relay', r);
      if (r.afterHash !== null) senderHashMs = Math.min(senderHashMs, r.total - r.afterHash);
      if (run === 0) relayRssBefore = r.rssBefore;
      relayPeak = Math.max(relayPeak, r.peakRss);
    }

    const fmt = (n: number) => (n ? n.toFixed(1) : '-');
    const ratio = (a: number, b: number) => (a && b ? (a / b).toFixed(2) : '-');
    const figures = (xs: number[]) => xs.map(fmt);
    const ratios = (a: number[], b: number[]) => a.map((x, i) => ratio(x, b[i]!));
    const growth = relayPeak - relayRssBefore;
    const rows: string[][] = [
      ['plain HTTP pipe (node → node PUT)', ...figures(bestOf.plain), '', ''],
      ['direct (nondivy send → receive)', ...figures(bestOf.direct), '', ''],
      ['relay (through the gateway)', ...figures(bestOf.relay), '', `${fmt(relayRssBefore / MiB)} → ${fmt(relayPeak / MiB)} MiB (+${fmt(Math.max(0, growth) / MiB)})`],
      ['ratio relay / direct', ...ratios(bestOf.relay, bestOf.direct), '≥ 0.80', ''],
      ['ratio direct / plain', ...ratios(bestOf.direct, bestOf.plain), '', ''],
      ['ratio relay / plain', ...ratios(bestOf.relay, bestOf.plain), '', ''],
    ];
    h.printTable(
      `Nondivy bench — device to device: file ${fmt(h.size / MiB)} MiB, best of ${h.runs} runs; one standalone server (the gateway), the sender and the receiver as processes of their own on loopback`,
      ['transfer', 'whole MiB/s', 'after hashing MiB/s', 'on disk MiB/s', 'aim', 'gateway RSS before → peak (aim: growth < 50 MiB)'],
      rows,
    );
    for (const note of [
      `receivers (CLI and plain) write into ${base}${process.env.BENCH_DIR ? ' (BENCH_DIR)' : ' (the system\'s temporary folder: a disk)'}, hashing each file as it arrives and fsyncing it before it gets its name`,
      'direct: nondivy send PUTs to the receiver\'s own endpoint; relay: the receiver advertises an address nobody listens on, the sender falls back to the gateway, which pipes its PUT into the receiver\'s GET',
      'plain HTTP pipe: one PUT from one Node process to a node:http server in another doing the receiver\'s work (write + SHA-256 + fsync); its sender does not hash',
      '"whole": the sender\'s start to both processes\' exit; the sender hashes the file first, then offers it; both sides poll the gateway every 500 ms (offer, answer, route, verdict)',
      '"after hashing": from the sender\'s registration with the gateway (its first request, made once the file is hashed; the time in the gateway\'s log) to both exits',
      `"on disk": the receiver's partial file appearing to the verified file in place (the folder looked at every ${WATCH_MS} ms): the bytes' own path, without the polling`,
      `the sender's start to its registration (Node start-up + hashing), shortest: ${Number.isFinite(senderHashMs) ? `${(senderHashMs / 1000).toFixed(2)} s` : 'not seen'}`,
    ]) {
      console.log(`  ${note}`);
    }
  } finally {
    await rig.close();
  }
}
