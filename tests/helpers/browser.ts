import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { tempDir } from './infra.js';

/** Debian's Chromium (`apt-get install chromium`, done by .ci/run): never a downloaded browser build. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for a headless Chromium on a closed network: no GPU, no sandbox (root in CI), and none of
 * its own connections to Google's services (they would be refused, and logged).
 */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-dev-shm-usage',
  // Media may start without a click (the tests press play from a script).
  '--autoplay-policy=no-user-gesture-required',
];

/** Why the browser tests cannot run here, or null. */
export function browserUnavailable(): string | null {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium)`;
  return null;
}

/** A phone: 390×844 CSS pixels, touch, a mobile user agent. */
export const PHONE: BrowserContextOptions = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36',
};

/** A laptop. */
export const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/**
 * Launches Chromium headless with a fresh profile (Playwright's own throwaway one), inside a network
 * namespace when `netnsPrefix` is given (`ip netns exec NS`): a wrapper script runs the real binary
 * there, so the browser sees only the test LAN.
 */
export async function launchBrowser(netnsPrefix: string[] = []): Promise<TestBrowser> {
  const dir = tempDir('nondivy-browser-');
  let executablePath = CHROMIUM;
  if (netnsPrefix.length > 0) {
    executablePath = join(dir.path, 'chromium-in-netns');
    const quoted = [...netnsPrefix, CHROMIUM].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    writeFileSync(executablePath, `#!/bin/sh\nexec ${quoted} "$@"\n`);
    chmodSync(executablePath, 0o755);
  }
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_FLAGS, timeout: 30_000 });
  } catch (err) {
    dir.cleanup();
    throw err;
  }
  return {
    browser,
    close: async () => {
      await browser.close().catch(() => undefined);
      dir.cleanup();
    },
  };
}

/**
 * Collects what a page logs as errors (console.error, failed resources, uncaught exceptions, CSP
 * violations): a flow passes only with none, except those it expects (`allow`).
 */
export function watchErrors(page: Page): { errors: string[]; allow(pattern: RegExp): void; take(): string[] } {
  const errors: string[] = [];
  const allowed: RegExp[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !allowed.some((p) => p.test(m.text()))) errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  return {
    errors,
    allow: (pattern) => allowed.push(pattern),
    take: () => errors.splice(0),
  };
}

let axeSource: string | null = null;

/** axe-core's violations of impact serious or critical on the page as it is now. */
export async function seriousA11yViolations(page: Page): Promise<string[]> {
  axeSource ??= readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated through the DevTools protocol, not a <script> tag: the page's CSP (no inline
  // scripts) stays as strict as in real use, and this is not a violation of it.
  if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(axeSource);
  const violations = (await page.evaluate(`window.axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })))`)) as {
    id: string;
    impact: string;
    help: string;
    nodes: string[];
  }[];
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.join(', ')}`);
}

/** A new context and page with errors watched. */
export async function openPage(browser: Browser, options: BrowserContextOptions): Promise<{ context: BrowserContext; page: Page; errors: ReturnType<typeof watchErrors> }> {
  const context = await browser.newContext({ ...options, acceptDownloads: true });
  const page = await context.newPage();
  return { context, page, errors: watchErrors(page) };
}

/** Runs a command inside a namespace (argv prefix), returning its output; throws on failure. */
export function runIn(prefix: string[], argv: string[], input?: Buffer): Buffer {
  const all = [...prefix, ...argv];
  const r = spawnSync(all[0]!, all.slice(1), { input, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return r.stdout;
}
