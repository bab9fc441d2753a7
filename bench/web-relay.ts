/**
 * Browser-to-browser sharing benchmark (issue 15): the payload (BENCH_SIZE, default 1 GiB) sent from
 * one Chromium tab to another on the web app's Nearby view, through the gateway's relay, beside the
 * CLI-to-CLI relayed transfer of the same file through the same gateway in the same run (the sharing
 * part's rig: `nondivy send` → `nondivy receive`, the receiver advertising an address nobody listens
 * on). Each device is a browser of its own (Debian's Chromium, headless, desktop viewport, the flags
 * of tests/helpers/browser.ts), on loopback as the web part is: the sender picks the file on disk
 * (setInputFiles: the browser reads it from disk as the XHR PUT's body), the receiver accepts and
 * the bytes land in its download manager's folder (in the bench's work folder), checked by size and
 * SHA-256 after the clock stops. Best of BENCH_RUNS, browser and CLI taking turns. Prints MiB/s of
 * both, the ratio browser / CLI (aim ≥ 0.8), and each tab's JavaScript heap (DevTools) and renderer
 * RSS idle and at their peak over every transfer (aim: flat, growth < 64 MiB).
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS, DESKTOP, watchErrors } from '../tests/helpers/browser.js';
import { openSharingRig, rate, sha256Of, sleep, type SharingBenchHelpers, type SharingRig } from './sharing.js';

const MiB = 1024 * 1024;
/** Growth of a tab's memory (idle → peak) below which it counts as flat. */
const FLAT = 64 * MiB;
const SENDER = 'bench-web-sender';
const RECEIVER = 'bench-web-receiver';
const PAGE_SIZE = 4096;


/** Rejects after `ms` with `what` timed out; the timer does not keep the process alive. */
function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no end within ${(ms / 1000).toFixed(0)} s`)), ms);
    timer.unref();
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** Polls `probe` every 100 ms for up to `ms`. */
async function until(what: string, probe: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * This machine's processes, from /proc/<pid>/stat: parent and resident set; whether each is a
 * Chromium renderer (its command line, read once per pid).
 */
const rendererByPid = new Map<number, boolean>();
function processes(): Map<number, { ppid: number; rss: number; cpu: number; renderer: boolean }> {
  const all = new Map<number, { ppid: number; rss: number; cpu: number; renderer: boolean }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      let renderer = rendererByPid.get(pid);
      if (renderer === undefined) {
        renderer = readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer');
        rendererByPid.set(pid, renderer);
      }
      // Fields from the state on: ppid is the 4th field of the line, utime and stime (clock ticks) the
      // 14th and 15th, rss (pages) the 24th.
      all.set(pid, { ppid: Number(fields[1]), rss: Number(fields[21]) * PAGE_SIZE, cpu: Number(fields[11]) + Number(fields[12]), renderer });
    } catch {
      /* gone */
    }
  }
  return all;
}

/** `root` and its descendants. */
function tree(all: ReturnType<typeof processes>, root: number): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, p] of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  const found: number[] = [];
  const stack = [root];
  while (stack.length > 0 && found.length < 10_000) {
    const pid = stack.pop()!;
    if (all.has(pid)) found.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return found;
}

/**
 * The renderer process of `page` among its browser's renderers (Chromium keeps others: a spare one,
 * one for its own WebUI): the one whose CPU time grows while the page spins for 400 ms.
 */
async function rendererOf(page: Page, root: number): Promise<number> {
  const renderers = () => {
    const all = processes();
    return new Map(tree(all, root).filter((pid) => all.get(pid)!.renderer).map((pid) => [pid, all.get(pid)!.cpu]));
  };
  // Another renderer may be busy at the same moment (a page still loading): up to three tries.
  let grown: { pid: number; ticks: number }[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = renderers();
    // Evaluated through DevTools, as the web part does: the page's CSP stays as it is.
    await page.evaluate('(() => { const end = performance.now() + 600; while (performance.now() < end); })()');
    grown = [...renderers()].map(([pid, cpu]) => ({ pid, ticks: cpu - (before.get(pid) ?? cpu) })).sort((x, y) => y.ticks - x.ticks);
    // 600 ms of CPU is about 60 ticks; the page's renderer must stand out.
    if (grown[0] && grown[0].ticks >= 30 && !(grown[1] && grown[1].ticks * 2 > grown[0].ticks)) break;
    if (attempt === 2) throw new Error(`the page's renderer process was not told apart: ${JSON.stringify(grown)}`);
    await sleep(500);
  }
  if (readFileSync(`/proc/${grown[0].pid}/cmdline`, 'utf8').includes('top-chrome-webui')) throw new Error('the renderer found for the page is the browser\'s WebUI one');
  return grown[0].pid;
}

/** The children of this process that run Chromium (the launcher script or the browser itself). */
function chromiumChildren(): Set<number> {
  const found = new Set<number>();
  for (const [pid, p] of processes()) {
    if (p.ppid !== process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('chromium')) found.add(pid);
    } catch {
      /* gone */
    }
  }
  return found;
}

/** One device: a browser of its own (so that its processes are told apart), one context, one page. */
interface Device {
  name: string;
  browser: Browser;
  /** The browser's top process (a child of this one): every process of that browser descends from it. */
  root: number;
  /** The page's renderer process. */
  renderer: number;
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  errors: ReturnType<typeof watchErrors>;
}

/** Peaks of one device's memory over a span. */
interface Mem {
  heap: number;
  tabRss: number;
  browserRss: number;
}

/** Samples both devices (and the gateway) every 100 ms while `fn` runs: the peaks, and fn's result. */
async function sampled<T>(devices: Device[], gatewayPid: number | undefined, fn: () => Promise<T>): Promise<{ mem: Mem[]; gateway: number; result: T }> {
  const mem: Mem[] = devices.map(() => ({ heap: 0, tabRss: 0, browserRss: 0 }));
  let gateway = 0;
  let stop = false;
  const sample = async () => {
    const all = processes();
    for (const [i, d] of devices.entries()) {
      const m = mem[i]!;
      const { cdp } = d;
      const { metrics } = await cdp.send('Performance.getMetrics').catch(() => ({ metrics: [] as { name: string; value: number }[] }));
      m.heap = Math.max(m.heap, metrics.find((x) => x.name === 'JSHeapUsedSize')?.value ?? 0);
      m.tabRss = Math.max(m.tabRss, all.get(d.renderer)?.rss ?? 0);
      m.browserRss = Math.max(m.browserRss, tree(all, d.root).reduce((sum, pid) => sum + all.get(pid)!.rss, 0));
    }
    if (gatewayPid) gateway = Math.max(gateway, all.get(gatewayPid)?.rss ?? 0);
  };
  const loop = (async () => {
    while (!stop) {
      await sample();
      await sleep(100);
    }
  })();
  try {
    const result = await fn();
    return { mem, gateway, result };
  } finally {
    stop = true;
    await loop;
    await sample();
  }
}

export async function webRelayBench(h: SharingBenchHelpers): Promise<void> {
  const file = h.payload();
  let rig: SharingRig | undefined;
  const browsers: Browser[] = [];
  try {
    // One gateway for both: the CLI rig's standalone server (its own Redis and data folder).
    rig = await openSharingRig(h, join(h.work, 'webrelay'));
    const { server, token } = rig;
    const downloads = join(rig.base, 'downloads');
    mkdirSync(downloads, { recursive: true });

    // Two accounts, one per device, as two people would be.
    for (const user of ['bench-alice', 'bench-bob']) {
      const res = await fetch(`${server}/api/v1/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ username: user, password: `${user}-password-long` }),
      });
      if (res.status !== 201) throw new Error(`creating ${user}: ${res.status} ${await res.text()}`);
    }

    /** A device as tests/web-nearby.test.ts makes one: its name saved, logged in, on the Nearby view. */
    const device = async (name: string, user: string): Promise<Device> => {
      const before = chromiumChildren();
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, timeout: 30_000, downloadsPath: downloads });
      browsers.push(browser);
      const root = [...chromiumChildren()].find((pid) => !before.has(pid));
      if (root === undefined) throw new Error('the browser process just launched was not found among this process\'s children');
      const context = await browser.newContext({ ...DESKTOP, acceptDownloads: true });
      const page = await context.newPage();
      const errors = watchErrors(page);
      // Through the DevTools protocol: the page's CSP (no inline script) stays as it is.
      await context.addInitScript(`localStorage.setItem('nondivy.deviceName', ${JSON.stringify(name)})`);
      await page.goto(`${server}/login?next=%2Fnearby`);
      await page.getByLabel('Username').fill(user);
      await page.getByLabel('Password').fill(`${user}-password-long`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('link', { name: user }).waitFor();
      await page.getByRole('heading', { name: 'Nearby' }).waitFor();
      await page.locator('.me-name', { hasText: name }).waitFor();
      const cdp = await context.newCDPSession(page);
      await cdp.send('Performance.enable');
      return { name, browser, root, renderer: await rendererOf(page, root), context, page, cdp, errors };
    };
    const a = await device(SENDER, 'bench-alice');
    const b = await device(RECEIVER, 'bench-bob');
    await a.page.locator('.device-name', { hasText: RECEIVER }).waitFor({ timeout: 15_000 });
    await b.page.locator('.device-name', { hasText: SENDER }).waitFor({ timeout: 15_000 });
    const devices = [a, b];

    // Idle: both tabs online, seeing each other, polling as they do, nothing moving.
    await sleep(1000);
    const idle = await sampled(devices, rig.gateway.pid, () => sleep(2000));

    const limitMs = 120_000 + (h.size / (10 * MiB)) * 1000;
    /** One browser transfer: offered by the sender, accepted by the receiver, downloaded and checked. */
    const browserTransfer = async (run: number) => {
      // The moment the download starts is taken in the event's handler, not when this code awaits it.
      const downloadEvent = b.page.waitForEvent('download', { timeout: limitMs }).then((d) => ({ download: d, at: performance.now() }));
      downloadEvent.catch(() => undefined);
      await a.page.locator('.device', { hasText: RECEIVER }).locator('input.pick-files').setInputFiles(file);
      const offer = b.page.locator('.transfer.state-offered', { hasText: 'payload.bin' });
      await until('the offer on the receiving tab', async () => (await offer.count()) === 1);
      // The clock: from the click on Accept to the download complete (bytes from the download's start).
      const t0 = performance.now();
      await offer.getByRole('button', { name: 'Accept' }).click();
      const { download, at: tStart } = await downloadEvent;
      const path = await within('the download', limitMs, download.path());
      const tEnd = performance.now();
      const failure = await download.failure();
      if (failure) throw new Error(`the download failed: ${failure}`);
      if (download.suggestedFilename() !== 'payload.bin') throw new Error(`the download is named ${download.suggestedFilename()}`);
      // Both tabs say so (the sender learns it from its next poll of its transfers).
      await until('the sending tab to show the transfer completed', async () => (await a.page.locator('.transfer.state-completed').count()) === run + 1);
      await until('the receiving tab to show the transfer completed', async () => (await b.page.locator('.transfer.state-completed').count()) === run + 1);
      const size = statSync(path).size;
      const sha = await sha256Of(path);
      await download.delete();
      if (size !== h.size || sha !== rig!.digest) throw new Error(`the browser received ${size} bytes with SHA-256 ${sha}, sent ${h.size} bytes with ${rig!.digest}`);
      return { acceptToDone: tEnd - t0, bytes: tEnd - tStart };
    };

    // Best of RUNS, browser and CLI taking turns; the tabs' memory peaks over every browser transfer.
    const best = { acceptToDone: 0, bytes: 0, cliAfterHash: 0, cliOnDisk: 0, cliWhole: 0 };
    const peak: Mem[] = devices.map(() => ({ heap: 0, tabRss: 0, browserRss: 0 }));
    let gatewayPeak = 0;
    for (let run = 0; run < h.runs; run++) {
      const s = await sampled(devices, rig.gateway.pid, () => browserTransfer(run));
      best.acceptToDone = Math.max(best.acceptToDone, rate(h.size, s.result.acceptToDone));
      best.bytes = Math.max(best.bytes, rate(h.size, s.result.bytes));
      for (const [i, m] of s.mem.entries()) {
        const p = peak[i]!;
        p.heap = Math.max(p.heap, m.heap);
        p.tabRss = Math.max(p.tabRss, m.tabRss);
        p.browserRss = Math.max(p.browserRss, m.browserRss);
      }
      gatewayPeak = Math.max(gatewayPeak, s.gateway);
      const c = await rig.cliTransfer('relay', run);
      best.cliWhole = Math.max(best.cliWhole, rate(h.size, c.total));
      if (c.afterHash) best.cliAfterHash = Math.max(best.cliAfterHash, rate(h.size, c.afterHash));
      if (c.onDisk) best.cliOnDisk = Math.max(best.cliOnDisk, rate(h.size, c.onDisk));
    }
    const pageErrors = devices.flatMap((d) => d.errors.take().map((e) => `${d.name}: ${e}`));

    const fmt = (n: number, digits = 1) => (n ? n.toFixed(digits) : '-');
    const ratioRow = (what: string, x: number, y: number): string[] => {
      const r = x && y ? x / y : 0;
      return [what, r ? r.toFixed(2) : '-', '≥ 0.80', r ? (r >= 0.8 ? 'met' : 'NOT met') : 'not measured'];
    };
    h.printTable(
      `Nondivy bench — browser to browser through the relay: file ${fmt(h.size / MiB)} MiB, best of ${h.runs} runs; one standalone server (the gateway); two headless Chromium (one per device, desktop viewport) on /nearby; the CLI-to-CLI relay through the same gateway in the same run; loopback`,
      ['transfer', 'MiB/s', 'aim', ''],
      [
        ['browser → browser: Accept clicked to download complete', fmt(best.acceptToDone), '', ''],
        ['browser → browser: download started to complete (the bytes)', fmt(best.bytes), '', ''],
        ['CLI → CLI relay: sender registered to both exits', fmt(best.cliAfterHash), '', ''],
        ['CLI → CLI relay: partial file to verified file (the bytes)', fmt(best.cliOnDisk), '', ''],
        ['CLI → CLI relay: whole (start-up and hashing included)', fmt(best.cliWhole), '', ''],
        ratioRow('ratio browser / CLI: Accept-to-done / registered-to-exits', best.acceptToDone, best.cliAfterHash),
        ratioRow('ratio browser / CLI: the bytes / the bytes', best.bytes, best.cliOnDisk),
      ],
    );
    const growth = (what: string, before: number, after: number, aim: boolean): string[] => {
      const g = after - before;
      return [what, `${fmt(before / MiB)} MiB`, `${fmt(after / MiB)} MiB`, `${g >= 0 ? '+' : ''}${(g / MiB).toFixed(1)} MiB`, aim ? 'flat (< 64 MiB)' : '', aim ? (g < FLAT ? 'met' : 'NOT met') : ''];
    };
    const memRows: string[][] = [];
    for (const [i, d] of devices.entries()) {
      const who = i === 0 ? 'sending' : 'receiving';
      memRows.push(growth(`${who} tab (${d.name}): JS heap`, idle.mem[i]!.heap, peak[i]!.heap, true));
      memRows.push(growth(`${who} tab: renderer RSS`, idle.mem[i]!.tabRss, peak[i]!.tabRss, true));
      memRows.push(growth(`${who} browser, every process (RSS summed)`, idle.mem[i]!.browserRss, peak[i]!.browserRss, false));
    }
    memRows.push(growth('gateway RSS (browser transfers)', idle.gateway, gatewayPeak, false));
    h.printTable(`Memory: idle (2 s, both tabs online) and the peak over the ${h.runs} browser transfers, sampled every 100 ms`, ['measure', 'idle', 'peak', 'growth', 'aim', ''], memRows);
    for (const note of [
      `the browsers' downloads and the CLI receiver's files go into ${rig.base}${process.env.BENCH_DIR ? ' (BENCH_DIR)' : ' (the system\'s temporary folder: a disk)'}; each browser download is checked (size and SHA-256) after its clock stops`,
      'the CLI receiver hashes each file as it arrives and fsyncs it before it gets its name; Chromium\'s download manager does neither (the gateway checks the relayed byte count)',
      'browser: the receiving tab asks for a download ticket on Accept; the sending tab learns of the acceptance from its next poll of its transfers (every 1 s), then PUTs the file; the relay sends the download\'s head once both sides are there ("download started")',
      'CLI: "registered" is the sender\'s first request (once it has hashed the file; the gateway\'s log); both CLIs poll every 500 ms (offer, answer, route, verdict)',
      `the tabs' JavaScript heap is DevTools' JSHeapUsedSize; a tab's renderer RSS is its renderer process's (told apart from the browser's spare and WebUI renderers by the CPU time it takes while the page spins); "every process" sums the RSS of all of that browser's processes (shared pages counted in each)`,
      pageErrors.length ? `errors the pages logged: ${pageErrors.join(' | ').slice(0, 2000)}` : 'neither page logged an error',
    ]) {
      console.log(`  ${note}`);
    }
  } finally {
    for (const b of browsers) await b.close().catch(() => undefined);
    await rig?.close();
  }
}
