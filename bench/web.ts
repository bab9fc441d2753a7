/**
 * Web app benchmark, in Debian's Chromium (playwright-core) against a standalone server over a
 * library of BENCH_WEB_ITEMS (default 100,000) items:
 * - first load: bytes transferred (everything, and the app shell's JavaScript and CSS) and the time
 *   from navigation to the first results rendered, in a fresh browser context each run;
 * - search as you type: for each key press, the time from the key to the results of the new words
 *   rendered (the list's `data-for` names the query it shows), p50 and p95 (aim p95 ≤ 100 ms);
 * - the tab's memory (JavaScript heap, and the renderer processes' resident set) idle, while
 *   uploading the bench's payload (BENCH_SIZE, default 1 GiB) through the upload page, and while
 *   downloading it through the browser's download manager: flat means the file never passes
 *   through the page.
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createLogger } from '@nondivy/log';
import { createRedis, RedisLibraryState, waitForRedis } from '@nondivy/state';
import type { CDPSession, Page } from 'playwright-core';
import { DESKTOP, launchBrowser, PHONE } from '../tests/helpers/browser.js';
import { commitItems, percentile, pick, WORDS } from './search.js';

const MiB = 1024 * 1024;
const ITEMS = Number(process.env.BENCH_WEB_ITEMS ?? 100_000);
const LOAD_RUNS = 5;

export interface WebBenchHelpers {
  size: number;
  adminPassword: string;
  payload(): string;
  startRedis(onStart?: (child: ChildProcess) => void): Promise<string>;
  startStandalone(env: Record<string, string>, port?: number): Promise<{ child: ChildProcess; port: number }>;
  stopChild(child: ChildProcess): Promise<void>;
  printTable(title: string, header: string[], rows: string[][]): void;
  work: string;
}

/** Resident memory of Chromium's renderer processes (the tabs), summed: read from /proc. */
function rendererRss(): number {
  let total = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chromium') || !cmd.includes('--type=renderer')) continue;
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      /* gone */
    }
  }
  return total;
}

/** The page's JavaScript heap in use (DevTools' Performance domain). */
async function jsHeap(cdp: CDPSession): Promise<number> {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0;
}

/** Samples the tab's memory every 100 ms while `fn` runs: the peaks, and how long fn took. */
async function sampled(cdp: CDPSession, fn: () => Promise<void>): Promise<{ heap: number; rss: number; ms: number }> {
  let heap = 0;
  let rss = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      heap = Math.max(heap, await jsHeap(cdp).catch(() => 0));
      rss = Math.max(rss, rendererRss());
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  stop = true;
  await loop;
  return { heap, rss, ms };
}

export async function webBench(h: WebBenchHelpers): Promise<void> {
  const redisUrl = await h.startRedis();
  const log = createLogger('bench', 'silent');
  const redis = createRedis(redisUrl, log);
  await waitForRedis(redis, log);
  const t0 = performance.now();
  await commitItems(new RedisLibraryState(redis), ITEMS);
  const commitS = (performance.now() - t0) / 1000;
  redis.disconnect();
  const { child, port } = await h.startStandalone({ REDIS_URL: redisUrl, NONDIVY_DATA_DIR: `${h.work}/web-data` });
  const base = `http://127.0.0.1:${port}`;
  const tb = await launchBrowser();
  const fmt = (n: number, d = 0) => n.toFixed(d);
  try {
    // 1. First load, each in a fresh context (empty cache): bytes and time to the first results.
    const loads: { bytes: number; shell: number; ms: number }[] = [];
    for (let i = 0; i < LOAD_RUNS; i++) {
      const context = await tb.browser.newContext(PHONE);
      const page = await context.newPage();
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      let bytes = 0;
      let shell = 0;
      const urls = new Map<string, string>();
      cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
      cdp.on('Network.loadingFinished', (e) => {
        bytes += e.encodedDataLength;
        if (/\/assets\/.*\.(js|css)$/.test(urls.get(e.requestId) ?? '')) shell += e.encodedDataLength;
      });
      await page.goto(base);
      await page.locator('.items > li').first().waitFor();
      const ms = (await page.evaluate('performance.now()')) as number;
      await page.waitForLoadState('networkidle');
      loads.push({ bytes, shell, ms });
      await context.close();
    }

    // 2. Search as you type: each key press to the new words' results on screen.
    const context = await tb.browser.newContext(DESKTOP);
    const page = await context.newPage();
    await page.goto(base);
    await page.locator('.items > li').first().waitFor();
    const input = page.getByLabel('Search the library');
    const latencies: number[] = [];
    const requests: number[] = [];
    const starts: number[] = [];
    let empty = 0;
    for (let w = 0; w < 12; w++) {
      await input.fill('');
      await waitShown(page, '');
      let text = '';
      for (const ch of `${pick(WORDS)} ${pick(WORDS)}`) {
        text += ch;
        // (Strings evaluated through DevTools: the page's CSP is not loosened, and this code has no DOM types.)
        await page.evaluate(`window.benchKey = { at: 0 }; document.addEventListener('keydown', () => (window.benchKey.at = performance.now()), { once: true, capture: true })`);
        await page.keyboard.press(ch === ' ' ? 'Space' : ch);
        const ms = await waitShown(page, text);
        latencies.push(ms);
        // The list request of these words: from its start to its last byte (network + server).
        const expected = `q=${new URLSearchParams({ q: text.trim() }).toString().slice(2)}`;
        const req = (await page.evaluate(`(() => {
          const all = performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/library?') && e.name.includes(${JSON.stringify(expected)}));
          const e = all[all.length - 1];
          performance.clearResourceTimings();
          return e ? [e.responseEnd - e.startTime, e.startTime - window.benchKey.at] : [-1, -1];
        })()`)) as number[];
        if (req[0]! >= 0) requests.push(req[0]!);
        if (req[1]! >= 0) starts.push(req[1]!);
        if ((await page.locator('.items > li').count()) === 0) empty++;
      }
    }
    await input.fill('');

    // 3. The tab's memory idle, uploading the payload, downloading it.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await page.goto(`${base}/login?next=%2Fupload`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(h.adminPassword);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Upload' }).waitFor();
    const idle = await sampled(cdp, () => new Promise((r) => setTimeout(r, 1000)));
    const file = h.payload();
    const up = await sampled(cdp, async () => {
      await page.locator('#pick-files').setInputFiles(file);
      await page.locator('.upload-row.s-done').waitFor({ timeout: 0 });
    });
    await page.locator('.upload-row.s-done').getByRole('link', { name: /^Open/ }).click();
    const downloadLink = page.getByRole('link', { name: /^Download/ });
    await downloadLink.waitFor();
    const down = await sampled(cdp, async () => {
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 0 }), downloadLink.click()]);
      await download.path();
      await download.delete();
    });
    await context.close();

    const med = (xs: number[]) => percentile(xs, 50);
    h.printTable(
      `Nondivy bench — web app, ${ITEMS} items (committed in ${fmt(commitS, 1)} s), Chromium headless on loopback`,
      ['measure', 'value', 'aim'],
      [
        ['first load: bytes transferred (median of 5)', `${fmt(med(loads.map((l) => l.bytes)) / 1024, 1)} KB`, ''],
        ['first load: app shell JS + CSS (gzip)', `${fmt(med(loads.map((l) => l.shell)) / 1024, 1)} KB`, '≤ 150 KB'],
        ['first load: navigation to first results (median)', `${fmt(med(loads.map((l) => l.ms)))} ms`, ''],
        [`search as you type: key to results, p50 (${latencies.length} keys, ${empty} empty)`, `${fmt(percentile(latencies, 50))} ms`, ''],
        ['search as you type: key to results, p95', `${fmt(percentile(latencies, 95))} ms`, '≤ 100 ms'],
        [`  key to the list request sent, p50 / p95`, `${fmt(percentile(starts, 50))} / ${fmt(percentile(starts, 95))} ms`, ''],
        [`  the list request (network + server), p50 / p95 (${requests.length})`, `${fmt(percentile(requests, 50))} / ${fmt(percentile(requests, 95))} ms`, ''],
        ['tab idle: JS heap / renderer RSS', `${fmt(idle.heap / MiB, 1)} / ${fmt(idle.rss / MiB)} MiB`, ''],
        [`uploading ${fmt(h.size / MiB)} MiB (${fmt(h.size / MiB / (up.ms / 1000))} MiB/s): peak JS heap / RSS`, `${fmt(up.heap / MiB, 1)} / ${fmt(up.rss / MiB)} MiB`, 'flat'],
        [`downloading it (${fmt(h.size / MiB / (down.ms / 1000))} MiB/s): peak JS heap / RSS`, `${fmt(down.heap / MiB, 1)} / ${fmt(down.rss / MiB)} MiB`, 'flat'],
      ],
    );
  } finally {
    await tb.close();
    await h.stopChild(child);
  }
}

/** Waits until the list shows the results of `q` (and one frame is painted); ms since the key press. */
async function waitShown(page: Page, q: string): Promise<number> {
  const expected = q.trim() ? `/?${new URLSearchParams({ q }).toString()}` : '/';
  // Seen as the DOM changes (a MutationObserver, not polling once a frame), then timed at the next
  // frame: the results are on screen when that frame is drawn.
  return (await page.evaluate(`new Promise((resolve) => {
    const shown = () => document.querySelector('.items')?.dataset.for === ${JSON.stringify(expected)};
    const done = () => requestAnimationFrame(() => resolve(window.benchKey?.at ? performance.now() - window.benchKey.at : 0));
    if (shown()) return done();
    const observer = new MutationObserver(() => {
      if (!shown()) return;
      observer.disconnect();
      done();
    });
    observer.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-for'] });
  })`)) as number;
}
