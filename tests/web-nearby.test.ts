/**
 * "Nearby" in a real browser: Debian's Chromium on a test LAN (the standalone server in one network
 * namespace at a non-loopback address, browsers and the CLI in another). Browser contexts are
 * devices: files go browser → browser through the relay and the download manager (bytes compared,
 * nothing left in the data folder or Redis), reject and cancel on both sides, a receiving tab closed
 * mid-transfer (its browser closed) fails the sender's transfer with a reason, browser → CLI and CLI → browser, a text
 * message; without guest sharing a guest is offered the login. axe-core on the view, screenshots at
 * phone and desktop size into clients/web/test-output/.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { browserUnavailable, DESKTOP, launchBrowser, openPage, PHONE, runIn, seriousA11yViolations, type TestBrowser } from './helpers/browser.js';
import { tempDir } from './helpers/infra.js';
import { createLan, lanUnavailable, type TestLan } from './helpers/netns.js';
import { startServer, type TestServer } from './helpers/server.js';

const skip = lanUnavailable() ?? browserUnavailable();
const OUT = fileURLToPath(new URL('../clients/web/test-output/', import.meta.url));
const CLI = fileURLToPath(new URL('../clients/cli/bin/nondivy.mjs', import.meta.url));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const shaFile = (p: string) => sha(readFileSync(p));

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('Nearby in Chromium, on a LAN address', { skip: skip ?? false }, () => {
  let lan: TestLan;
  let server: TestServer;
  let data: { path: string; cleanup(): void };
  let work: { path: string; cleanup(): void };
  let tb: TestBrowser;
  let browser: Browser;
  let base: string;
  const tokens: Record<string, string> = {};
  const contexts: BrowserContext[] = [];
  const browsers: TestBrowser[] = [];

  const curl = (args: string[], input?: Buffer) => runIn(lan.prefix(1), ['curl', '-sS', '--max-time', '30', ...args], input);
  const api = (method: string, path: string, opts: { token?: string; json?: unknown } = {}) => {
    const args = ['-X', method, '-o', '-', '-w', '\n%{http_code}', `${base}/api/v1${path}`];
    if (opts.token) args.push('-H', `authorization: Bearer ${opts.token}`);
    if (opts.json !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', '@-');
    const out = curl(args, opts.json !== undefined ? Buffer.from(JSON.stringify(opts.json)) : undefined).toString('utf8');
    const i = out.lastIndexOf('\n');
    return { status: Number(out.slice(i + 1)), body: out.slice(0, i) };
  };
  const until = async (what: string, probe: () => Promise<boolean> | boolean, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!(await probe())) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const view = async (page: Page, name: string) => {
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
    assert.deepEqual(await seriousA11yViolations(page), [], `accessibility of ${name}`);
  };

  /** A browser device: logged in as `user` (or a guest), named `name`, on the Nearby view. */
  const device = async (name: string, user: string | null, size = DESKTOP, into = browser) => {
    const { context, page, errors } = await openPage(into, size);
    contexts.push(context);
    // Through the DevTools protocol: the page's CSP (no inline script) stays as it is.
    await context.addInitScript(`localStorage.setItem('nondivy.deviceName', ${JSON.stringify(name)})`);
    if (user) {
      await page.goto(`${base}/login?next=%2Fnearby`);
      await page.getByLabel('Username').fill(user);
      await page.getByLabel('Password').fill(`${user}-password-long`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('link', { name: user }).waitFor();
      // The login goes on to the Nearby view by itself.
      await page.getByRole('heading', { name: 'Nearby' }).waitFor();
    } else await page.goto(`${base}/nearby`);
    return { context, page, errors };
  };
  const online = (page: Page, name: string) => page.locator('.me-name', { hasText: name }).waitFor();
  const sees = (page: Page, name: string) => page.locator('.device-name', { hasText: name }).waitFor({ timeout: 15_000 });
  const row = (page: Page, text: RegExp | string) => page.locator('.transfer', { hasText: text }).first();
  const sendTo = async (page: Page, to: string, paths: string[]) => {
    await page.locator('.device', { hasText: to }).locator('input.pick-files').setInputFiles(paths);
  };
  const file = (name: string, bytes: Buffer) => {
    const p = join(work.path, name);
    writeFileSync(p, bytes);
    return p;
  };
  /** A sparse file: zeros, big enough to be caught mid-way. */
  const sparse = (name: string, size: number) => {
    const p = join(work.path, name);
    const fd = openSync(p, 'w');
    ftruncateSync(fd, size);
    closeSync(fd);
    return p;
  };
  /** The CLI on the browsers' host. */
  const cli = (args: string[], token: string, deviceName: string) => {
    const [cmd, ...rest] = [...lan.prefix(1), process.execPath, CLI, ...args];
    const child = spawn(cmd!, rest, {
      env: { PATH: process.env.PATH ?? '', HOME: work.path, XDG_CONFIG_HOME: join(work.path, 'config'), NONDIVY_SERVER: base, NONDIVY_TOKEN: token, NONDIVY_DEVICE: deviceName },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    return { child, stdout: () => out, stderr: () => err, done: new Promise<number | null>((r) => child.once('exit', (code) => r(code))) };
  };

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    lan = createLan(2);
    data = tempDir();
    work = tempDir('nondivy-nearby-');
    server = await startServer(
      { NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: 'admin-password', NONDIVY_HTTP_HOST: '0.0.0.0', NONDIVY_FTP_HOST: '0.0.0.0', NONDIVY_SITE_NAME: 'Attic' },
      { prefix: lan.prefix(0), host: lan.hosts[0]!.ip, port: 8080 },
    );
    base = server.url;
    const admin = JSON.parse(api('POST', '/auth/login', { json: { username: 'admin', password: 'admin-password' } }).body) as { token: string };
    for (const user of ['alice', 'bob']) {
      assert.equal(api('POST', '/users', { token: admin.token, json: { username: user, password: `${user}-password-long` } }).status, 201);
      tokens[user] = (JSON.parse(api('POST', '/auth/login', { json: { username: user, password: `${user}-password-long` } }).body) as { token: string }).token;
    }
    tb = await launchBrowser(lan.prefix(1));
    browser = tb.browser;
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    for (const b of browsers) await b.close();
    await tb?.close();
    await server?.stop();
    lan?.cleanup();
    data?.cleanup();
    work?.cleanup();
  });

  it('a guest, with guest sharing off, is told sharing needs an account and offered the login', async () => {
    const { context, page, errors } = await device('guest-phone', null, PHONE);
    await page.getByText('Sharing with nearby devices needs an account').waitFor();
    const login = page.getByRole('link', { name: 'Log in to share' });
    assert.equal(await login.getAttribute('href'), '/login?next=%2Fnearby');
    await page.locator('svg.qr').waitFor();
    assert.equal(await page.locator('svg.qr').getAttribute('data-text'), `${base}/nearby`);
    await view(page, 'nearby-guest-phone');
    errors.allow(/401/);
    assert.deepEqual(errors.take().filter((e) => !/401|Unauthorized/.test(e)), []);
    await context.close();
  });

  it('browser to browser: 30 MiB and an empty file, accepted, downloaded byte-exact, nothing kept on the server', async () => {
    const a = await device('alice-phone', 'alice', PHONE);
    const b = await device('bob-laptop', 'bob');
    await online(a.page, 'alice-phone');
    await online(b.page, 'bob-laptop');
    await sees(a.page, 'bob-laptop');
    await sees(b.page, 'alice-phone');
    await view(a.page, 'nearby-phone');
    await view(b.page, 'nearby-desktop');

    const marker = randomBytes(32);
    const big = Buffer.concat([marker, randomBytes(30 * 1024 * 1024 - 64), marker]);
    const paths = [file('holiday.bin', big), file('empty.txt', Buffer.alloc(0))];
    await sendTo(a.page, 'bob-laptop', paths);
    const offer = row(b.page, 'From alice-phone');
    await offer.getByText('holiday.bin').waitFor();
    await offer.getByText('empty.txt').waitFor();
    await offer.getByText('30 MB').waitFor();
    await view(b.page, 'nearby-offer-desktop');
    const downloads: { name: string; path: string }[] = [];
    b.page.on('download', (d) => {
      void d.path().then((p) => downloads.push({ name: d.suggestedFilename(), path: p }));
    });
    await offer.getByRole('button', { name: 'Accept' }).click();
    await row(a.page, 'To bob-laptop').getByText('Completed').waitFor({ timeout: 30_000 });
    await row(b.page, 'From alice-phone').getByText('Completed').waitFor({ timeout: 30_000 });
    await until('both downloads', () => downloads.length === 2, 30_000);
    const got = Object.fromEntries(downloads.map((d) => [d.name, d.path]));
    assert.equal(shaFile(got['holiday.bin']!), sha(big));
    assert.equal(statSync(got['empty.txt']!).size, 0);
    await view(a.page, 'nearby-sent-phone');
    await view(b.page, 'nearby-received-desktop');

    // Nothing of the bytes in the data folder or in Redis (an uncompressed snapshot of every value).
    assert.deepEqual(filesUnder(join(data.path, 'blobs')), [], 'nothing in the blob store');
    for (const f of filesUnder(data.path)) if (statSync(f).size < 512 * 1024 * 1024) assert.equal(readFileSync(f).indexOf(marker), -1, `no relayed bytes in ${f}`);
    const { port } = JSON.parse(readFileSync(join(data.path, 'redis', 'nondivy-embedded.json'), 'utf8')) as { port: number };
    runIn(lan.prefix(0), ['redis-cli', '-p', String(port), 'config', 'set', 'rdbcompression', 'no']);
    const snapshot = join(work.path, 'snapshot.rdb');
    runIn(lan.prefix(0), ['redis-cli', '-p', String(port), '--rdb', snapshot]);
    assert.ok(statSync(snapshot).size > 0);
    assert.equal(readFileSync(snapshot).indexOf(marker), -1, 'no relayed bytes in Redis');

    assert.deepEqual(a.errors.take(), []);
    assert.deepEqual(b.errors.take(), []);
    await a.context.close();
    await b.context.close();
  });

  it('reject, cancel on either side, and the receiving browser closed mid-transfer fails the sender\'s transfer with a reason', async () => {
    const a = await device('alice-tablet', 'alice');
    // The relay's answer to the PUT cut short is logged by the browser as a failed resource.
    a.errors.allow(/Failed to load resource: the server responded with a status of 503/);
    // The receiver in a browser of its own, so that closing it cuts its download for sure (closing a
    // tab alone leaves a download running in the browser's download manager, which is what people want).
    const other = await launchBrowser(lan.prefix(1));
    browsers.push(other);
    const b = await device('bob-desktop', 'bob', DESKTOP, other.browser);
    await sees(a.page, 'bob-desktop');
    await sees(b.page, 'alice-tablet');
    const small = file('note.txt', Buffer.from('hello\n'));

    // Rejected by the receiver: the sender hears why.
    await sendTo(a.page, 'bob-desktop', [small]);
    await row(b.page, 'From alice-tablet').getByRole('button', { name: 'Reject' }).click();
    await row(a.page, 'To bob-desktop').getByText('Rejected').waitFor();
    await row(a.page, 'To bob-desktop').getByText('Declined on the receiving device').waitFor();

    // Withdrawn by the sender before an answer.
    await sendTo(a.page, 'bob-desktop', [small]);
    await until('the new offer', async () => (await b.page.locator('.transfer.state-offered').count()) === 1);
    await a.page.locator('.transfer.state-offered').getByRole('button', { name: 'Cancel' }).click();
    await b.page.locator('.transfer.state-cancelled').getByText('Cancelled on the sending device').waitFor();

    // Cancelled by the receiver mid-way.
    const huge = sparse('huge.bin', 8 * 1024 ** 3);
    await sendTo(a.page, 'bob-desktop', [huge]);
    await until('the big offer', async () => (await b.page.locator('.transfer.state-offered').count()) === 1);
    await b.page.locator('.transfer.state-offered').getByRole('button', { name: 'Accept' }).click();
    await until('bytes on their way', async () => Number((await b.page.locator('.transfer.state-accepted progress').getAttribute('value').catch(() => '0')) ?? 0) > 0, 20_000);
    await b.page.locator('.transfer.state-accepted').getByRole('button', { name: 'Cancel' }).click();
    await a.page.locator('.transfer.state-cancelled', { hasText: 'huge.bin' }).getByText('Cancelled on the receiving device').waitFor();

    // The receiving tab closes mid-transfer.
    await sendTo(a.page, 'bob-desktop', [huge]);
    await until('the last offer', async () => (await b.page.locator('.transfer.state-offered').count()) === 1);
    await b.page.locator('.transfer.state-offered').getByRole('button', { name: 'Accept' }).click();
    // Mid-transfer for sure: the relay has delivered bytes to the receiver's download (the sender's
    // own progress moves as soon as its socket buffers take bytes, before the download may have begun).
    await until('bytes on their way', async () => Number((await b.page.locator('.transfer.state-accepted progress').getAttribute('value').catch(() => '0')) ?? 0) > 0, 20_000);
    await until('bytes reported to the sender', async () => Number((await a.page.locator('.transfer.state-accepted progress').getAttribute('value').catch(() => '0')) ?? 0) > 0, 20_000);
    await other.close();
    const failed = a.page.locator('.transfer.state-failed', { hasText: 'huge.bin' });
    await failed.waitFor({ timeout: 20_000 });
    assert.match(await failed.locator('.why').innerText(), /receiver went away/i);
    // …and it is gone from the sender's list.
    await until('bob-desktop gone', async () => (await a.page.locator('.device-name', { hasText: 'bob-desktop' }).count()) === 0);
    await view(a.page, 'nearby-ends-desktop');
    assert.deepEqual(a.errors.take(), []);
    await a.context.close();
  });

  it('browser to the CLI receiver, the CLI sender to a browser, and text messages both ways', async () => {
    const a = await device('alice-laptop', 'alice');
    await online(a.page, 'alice-laptop');
    const dir = join(work.path, 'cli-in');
    const recv = cli(['receive', '--dir', dir, '--yes', '--once', '--json', '--listen', '127.0.0.1:0'], tokens.bob!, 'bob-cli');
    await sees(a.page, 'bob-cli');
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    await sendTo(a.page, 'bob-cli', [file('for-cli.bin', bytes)]);
    assert.equal(await recv.done, 0, recv.stderr());
    assert.equal(shaFile(join(dir, 'for-cli.bin')), sha(bytes));
    await row(a.page, 'To bob-cli').getByText('Completed').waitFor();

    // The CLI sends to the browser, which accepts; the gateway completes once every byte is delivered.
    const downloads: string[] = [];
    a.page.on('download', (d) => void d.path().then((p) => downloads.push(p)));
    const src = file('from-cli.bin', randomBytes(2 * 1024 * 1024));
    const send = cli(['send', src, '--to', 'alice-laptop', '--json'], tokens.bob!, 'bob-cli-send');
    await row(a.page, 'From bob-cli-send').getByRole('button', { name: 'Accept' }).click();
    assert.equal(await send.done, 0, send.stderr());
    await until('the download', () => downloads.length === 1);
    assert.equal(shaFile(downloads[0]!), shaFile(src));

    // A text to the CLI: it prints it.
    const recv2 = cli(['receive', '--dir', dir, '--yes', '--once'], tokens.bob!, 'bob-cli-2');
    await sees(a.page, 'bob-cli-2');
    const card = a.page.locator('.device', { hasText: 'bob-cli-2' });
    await card.getByRole('button', { name: 'Send a text' }).click();
    await card.getByLabel('Text or link for bob-cli-2').fill('the wifi password is hunter2');
    await card.getByRole('button', { name: 'Send text' }).click();
    assert.equal(await recv2.done, 0, recv2.stderr());
    assert.match(recv2.stdout(), /> the wifi password is hunter2/);

    // A text between browsers: shown at once with a copy button that works on plain http.
    const b = await device('bob-phone', 'bob', PHONE);
    await sees(a.page, 'bob-phone');
    const card2 = a.page.locator('.device', { hasText: 'bob-phone' });
    await card2.getByRole('button', { name: 'Send a text' }).click();
    await card2.getByLabel('Text or link for bob-phone').fill('http://10.0.0.5/shopping-list');
    await card2.getByRole('button', { name: 'Send text' }).click();
    const msg = row(b.page, 'From alice-laptop');
    await msg.getByText('Completed').waitFor();
    assert.equal(await msg.getByLabel('Text message').inputValue(), 'http://10.0.0.5/shopping-list');
    await msg.getByRole('button', { name: 'Copy' }).click();
    await b.page.getByText('Copied').waitFor();
    await view(b.page, 'nearby-text-phone');
    assert.deepEqual(a.errors.take(), []);
    assert.deepEqual(b.errors.take(), []);
    await a.context.close();
    await b.context.close();
  });
});
