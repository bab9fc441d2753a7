/**
 * The web app in a real browser: Debian's Chromium driven by playwright-core, on a test LAN of two
 * network namespaces — the standalone server on one host at a non-loopback address (so the page is
 * not a secure context, as on a real LAN), the browser and every other client (curl, FTP) on the
 * other. A phone (390×844, touch, mobile user agent) and a desktop. Every view is scanned with
 * axe-core (no serious or critical violation) and screenshotted into clients/web/test-output/
 * (not committed); no flow may log an error to the console.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { browserUnavailable, DESKTOP, launchBrowser, openPage, PHONE, runIn, seriousA11yViolations, type TestBrowser } from './helpers/browser.js';
import { tempDir } from './helpers/infra.js';
import { crc32, epub } from './helpers/media.js';
import { createLan, lanUnavailable, type TestLan } from './helpers/netns.js';
import { startServer, type TestServer } from './helpers/server.js';

const skip = lanUnavailable() ?? browserUnavailable();
const OUT = fileURLToPath(new URL('../clients/web/test-output/', import.meta.url));
const ADMIN_PASSWORD = 'admin-password';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A WAV of `seconds` of a quiet tone (8 kHz, 16-bit mono): something every Chromium plays and seeks. */
function wav(seconds: number): Buffer {
  const rate = 8000;
  const samples = rate * seconds;
  const b = Buffer.alloc(44 + samples * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + samples * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) b.writeInt16LE(Math.round(Math.sin((i / rate) * 2 * Math.PI * 440) * 2000), 44 + i * 2);
  return b;
}

/** The part of a page's <audio> the tests use (the tests' TypeScript has no DOM types). */
interface MediaElement {
  readyState: number;
  currentTime: number;
  play(): Promise<void>;
  pause(): void;
  addEventListener(type: string, listener: () => void, options?: { once: boolean }): void;
}

/** A complete PNG (a colour gradient), that a browser decodes and shows. */
function png(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type), body])));
    return Buffer.concat([head, Buffer.from(type), body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set([(x * 255) / width, 90, (y * 255) / height], y * (width * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

describe('the web app in Chromium, on a LAN address', { skip: skip ?? false }, () => {
  let lan: TestLan;
  let server: TestServer;
  let data: { path: string; cleanup(): void };
  let files: { path: string; cleanup(): void };
  let tb: TestBrowser;
  let browser: Browser;
  let base: string;
  let admin: string;
  const ids: Record<string, string> = {};
  // Long enough that the player cannot hold it all at once on a slowed link: a seek far ahead needs a Range request.
  const audio = wav(12 * 60);

  /** curl on the browser's host: the API as any LAN client sees it. */
  const curl = (args: string[], input?: Buffer) => runIn(lan.prefix(1), ['curl', '-sS', '--max-time', '30', ...args], input);
  const api = (method: string, path: string, opts: { token?: string; json?: unknown; form?: string[]; headers?: string[] } = {}) => {
    const args = ['-X', method, '-o', '-', '-w', '\n%{http_code}', `${base}/api/v1${path}`];
    if (opts.token) args.push('-H', `authorization: Bearer ${opts.token}`);
    for (const h of opts.headers ?? []) args.push('-H', h);
    if (opts.json !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', '@-');
    for (const f of opts.form ?? []) args.push('-F', f);
    const out = curl(args, opts.json !== undefined ? Buffer.from(JSON.stringify(opts.json)) : undefined).toString('utf8');
    const i = out.lastIndexOf('\n');
    const body = out.slice(0, i);
    return { status: Number(out.slice(i + 1)), body, json: () => JSON.parse(body) as Record<string, unknown> };
  };
  const uploadFile = (name: string, bytes: Buffer, fields: Record<string, string>, type?: string) => {
    const path = join(files.path, name);
    writeFileSync(path, bytes);
    const res = api('POST', '/library', { token: admin, form: [...Object.entries(fields).map(([k, v]) => `${k}=${v}`), `file=@${path}${type ? `;type=${type}` : ''}`] });
    assert.equal(res.status, 201, res.body);
    return res.json() as { id: string; folder?: string; tags: string[] };
  };

  /** Polls until `probe` holds (the page's CSP forbids Playwright's string predicates, which use eval). */
  const until = async (what: string, probe: () => Promise<boolean>, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!(await probe())) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const rows = (page: Page) => page.locator('.items > li').count();

  /** Screenshot into the test output, and the axe scan of the view as it is. */
  const view = async (page: Page, name: string) => {
    await page.waitForLoadState('networkidle').catch(() => undefined);
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
    assert.deepEqual(await seriousA11yViolations(page), [], `accessibility of ${name}`);
  };
  const loginIn = async (page: Page, username: string, password: string) => {
    await page.goto(`${base}/login`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('link', { name: username }).waitFor();
  };

  before(async () => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    lan = createLan(2);
    data = tempDir();
    files = tempDir('nondivy-webfiles-');
    server = await startServer(
      {
        NONDIVY_DATA_DIR: data.path,
        NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD,
        NONDIVY_HTTP_HOST: '0.0.0.0',
        NONDIVY_FTP_HOST: '0.0.0.0',
        NONDIVY_SITE_NAME: 'Attic',
        NONDIVY_MAX_UPLOAD_BYTES: '16MiB',
        // Each request's completion is logged at debug: the test reads which content requests were partial.
        LOG_LEVEL: 'debug',
      },
      { prefix: lan.prefix(0), host: lan.hosts[0]!.ip, port: 8080 },
    );
    base = server.url;
    const login = api('POST', '/auth/login', { json: { username: 'admin', password: ADMIN_PASSWORD } });
    assert.equal(login.status, 200, login.body);
    admin = login.json().token as string;
    ids.cafe = uploadFile('cafe.epub', epub({ title: 'Café au lait', author: 'Jeanne Dupont', language: 'fr' }), { title: 'Café au lait', kind: 'ebook', tags: 'cuisine,french' }).id;
    ids.menu = uploadFile('menu.txt', Buffer.from('Soup of the day\nBread\n'), { title: 'Cafeteria menu', tags: 'food' }, 'text/plain').id;
    ids.blue = uploadFile('blue.wav', audio, { title: 'Kind of Blue', kind: 'audio', tags: 'jazz' }, 'audio/wav').id;
    ids.sunset = uploadFile('sunset.png', png(64, 40), { title: 'Sunset over the bay', tags: 'photo' }, 'image/png').id;
    for (let i = 0; i < 34; i++) uploadFile(`note-${i}.txt`, Buffer.from(`note ${i}\n`), { title: `Field note ${String(i).padStart(2, '0')}`, tags: 'notes' }, 'text/plain');
    tb = await launchBrowser(lan.prefix(1));
    browser = tb.browser;
  });

  after(async () => {
    await tb?.close();
    await server?.stop();
    lan?.cleanup();
    data?.cleanup();
    files?.cleanup();
  });

  it('serves the app with a strict CSP, immutable hashed assets, problem+json API 404s, and a first load under 150 KB gzip', () => {
    const head = curl(['-D', '-', '-o', '/dev/null', `${base}/`]).toString();
    assert.match(head, /content-security-policy: default-src 'self'; script-src 'self';[^\n]*object-src 'none'; base-uri 'none'; frame-ancestors 'none'/i);
    assert.match(head, /x-content-type-options: nosniff/i);
    assert.match(head, /referrer-policy: no-referrer/i);
    assert.match(head, /cache-control: no-cache/i);
    const html = curl([`${base}/item/AAAAAAAAAAAAAAAAAAAAAA`]).toString();
    assert.match(html, /<div id="app">/, 'client routes load the app');
    assert.doesNotMatch(html, /<script>(?!<)/, 'no inline script');
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), html);
    let gzipBytes = Number(curl(['-o', '/dev/null', '-w', '%{size_download}', '-H', 'accept-encoding: gzip', `${base}/`]).toString());
    for (const a of assets) {
      const h = curl(['-D', '-', '-o', '/dev/null', '-H', 'accept-encoding: gzip', `${base}${a}`]).toString();
      assert.match(h, /cache-control: public, max-age=31536000, immutable/i);
      assert.match(h, /content-encoding: gzip/i);
      gzipBytes += Number(/content-length: (\d+)/i.exec(h)![1]);
    }
    assert.ok(gzipBytes <= 150 * 1024, `first load is ${gzipBytes} bytes gzip`);
    const missing = api('GET', '/nothing-here');
    assert.equal(missing.status, 404);
    assert.equal(missing.json().title, 'Not Found');
    assert.match(curl(['-o', '/dev/null', '-w', '%{http_code}', `${base}/assets/gone-123.js`]).toString(), /404/);
  });

  it('cookie sessions: HttpOnly and SameSite=Strict, refused cross-site or without the CSRF header; Bearer clients unaffected', () => {
    const res = curl(['-D', '-', '-o', '/dev/null', '-H', 'content-type: application/json', '-H', `origin: ${base}`, '-H', 'x-nondivy-csrf: 1', '--data-binary', '@-', `${base}/api/v1/auth/session`], Buffer.from(JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }))).toString();
    const cookie = /set-cookie: (nondivy_session=[^;]+);([^\n]*)/i.exec(res);
    assert.ok(cookie, res);
    assert.match(cookie[2]!, /HttpOnly/i);
    assert.match(cookie[2]!, /SameSite=Strict/i);
    assert.match(cookie[2]!, /Path=\//);
    const jar = ['-H', `cookie: ${cookie[1]}`];
    assert.equal(api('GET', '/me', { headers: [`cookie: ${cookie[1]}`] }).status, 200);
    const json = { username: `eve${randomBytes(2).toString('hex')}`, password: 'long enough password' };
    // Another site's page: its Origin; a form or script without the header; both refused.
    const cross = api('POST', '/users', { json, headers: [`cookie: ${cookie[1]}`, 'origin: http://evil.example', 'x-nondivy-csrf: 1'] });
    assert.equal(cross.status, 403, cross.body);
    assert.match(cross.json().detail as string, /Cross-site/);
    const noHeader = api('POST', '/users', { json, headers: [`cookie: ${cookie[1]}`, `origin: ${base}`] });
    assert.equal(noHeader.status, 403, noHeader.body);
    assert.equal(api('POST', '/users', { json, headers: [`cookie: ${cookie[1]}`] }).status, 403, 'no Origin at all');
    // A cross-site login is refused too (login CSRF).
    assert.equal(api('POST', '/auth/session', { json: { username: 'admin', password: ADMIN_PASSWORD }, headers: ['origin: http://evil.example', 'x-nondivy-csrf: 1'] }).status, 403);
    // Bearer: no Origin, no header, as before.
    const bearerMade = api('POST', '/users', { token: admin, json });
    assert.equal(bearerMade.status, 201, bearerMade.body);
    // The same session as a Bearer login: logging out ends it and clears the cookie.
    const out = curl(['-D', '-', '-o', '/dev/null', '-X', 'POST', ...jar, '-H', `origin: ${base}`, '-H', 'x-nondivy-csrf: 1', `${base}/api/v1/auth/logout`]).toString();
    assert.match(out, /^HTTP\/1.1 204/);
    assert.match(out, /set-cookie: nondivy_session=; [^\n]*Max-Age=0/i);
    assert.deepEqual(api('GET', '/auth/session', { headers: [`cookie: ${cookie[1]}`] }).json(), { user: null });
  });

  it('phone: search as you type with facets, in a page that is not a secure context', async () => {
    const { context, page, errors } = await openPage(browser, PHONE);
    await page.goto(base);
    await page.getByRole('heading', { name: 'Latest in the library' }).waitFor();
    // Plain http at a LAN address: nothing here may need a secure context.
    assert.equal(await page.evaluate('window.isSecureContext'), false);
    await page.getByText('Field note 33').waitFor();
    await view(page, 'library-phone');
    // Infinite scroll: the second page arrives as the end of the list comes into view.
    assert.equal(await page.locator('.items > li').count(), 30);
    await page.locator('.items > li').last().scrollIntoViewIfNeeded();
    await until('the second page', async () => (await rows(page)) === 38);

    await page.getByLabel('Search the library').pressSequentially('cafe', { delay: 60 });
    await page.getByRole('heading', { name: 'Results for “cafe”' }).waitFor();
    await page.getByText('Café au lait').waitFor();
    await page.getByText('Cafeteria menu').waitFor();
    assert.equal(await page.locator('.items > li').count(), 2, 'accents and case ignored, the word a prefix');
    await page.getByRole('button', { name: /^Ebooks/ }).click();
    await until('the ebook only', async () => (await rows(page)) === 1);
    assert.match(page.url(), /q=cafe&kind=ebook/);
    await page.getByRole('button', { name: /^All/ }).click();
    await page.getByRole('button', { name: /#food/ }).click();
    await until('the tagged item only', async () => (await rows(page)) === 1);
    await page.getByText('Cafeteria menu').waitFor();
    await view(page, 'search-phone');
    assert.deepEqual(errors.take(), []);
    await context.close();
  });

  it('phone: an item with its facts; audio plays and seeks with Range requests; the download is byte-exact', async () => {
    const { context, page, errors } = await openPage(browser, PHONE);
    await page.goto(`${base}/?kind=audio`);
    await page.getByRole('link', { name: /^Kind of Blue/ }).click();
    await page.getByRole('heading', { name: 'Kind of Blue' }).waitFor();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: 512 * 1024, uploadThroughput: -1 });
    const player = page.locator('audio');
    await until('the audio metadata', () => player.evaluate((a: MediaElement) => a.readyState >= 1));
    const seekedAt = Date.now();
    const position = (await player.evaluate(
      (a: MediaElement) =>
        new Promise<number>((resolve, reject) => {
          a.addEventListener('seeked', () => resolve(a.currentTime), { once: true });
          a.addEventListener('error', () => reject(new Error('media error')), { once: true });
          void a.play().then(() => (a.currentTime = 600));
        }),
    )) as number;
    assert.ok(position >= 599 && position <= 601, `seeked to ${position}`);
    await until('playing on after the seek', () => player.evaluate((a: MediaElement) => a.currentTime > 600.2));
    await player.evaluate((a: MediaElement) => a.pause());
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await view(page, 'item-audio-phone');
    assert.ok(Date.now() - seekedAt < 30_000);

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: /^Download/ }).click()]);
    assert.equal(download.suggestedFilename(), 'blue.wav');
    const saved = await download.path();
    assert.equal(sha(readFileSync(saved)), sha(audio));

    await page.goto(`${base}/item/${ids.sunset}`);
    await page.getByRole('img', { name: 'Sunset over the bay' }).waitFor();
    await until('the image decoded', () => page.locator('.preview img').evaluate((i: { naturalWidth: number }) => i.naturalWidth === 64));
    await page.goto(`${base}/item/${ids.menu}`);
    await page.getByText('Soup of the day').waitFor();
    await view(page, 'item-text-phone');
    await page.goto(`${base}/item/${ids.cafe}`);
    await page.getByText('Jeanne Dupont').waitFor();
    await view(page, 'item-ebook-phone');
    assert.deepEqual(errors.take(), []);
    await context.close();
    // The player's requests were Range requests: the server answered them 206 (partial content).
    // Its log of each one's end says so (a media request ends when the page lets go of it).
    const url = `/api/v1/library/${ids.blue}/content`;
    await until('the log of the player\'s requests', async () => {
      const reqIds = new Set(server.logs.filter((l) => (l.req as { url?: string } | undefined)?.url === url).map((l) => l.reqId));
      return server.logs.some((l) => reqIds.has(l.reqId) && (l.res as { statusCode?: number } | undefined)?.statusCode === 206);
    }).catch((err) => {
      const reqIds = new Set(server.logs.filter((l) => (l.req as { url?: string } | undefined)?.url === url).map((l) => l.reqId));
      console.log(JSON.stringify(server.logs.filter((l) => reqIds.has(l.reqId))));
      throw err;
    });
  });

  it('phone: log in, upload a folder with a subfolder (progress shown), cancel an upload (nothing left), edit tags, delete', async () => {
    const { context, page, errors } = await openPage(browser, PHONE);
    // A wrong password first: said in words (the browser logs the 401 itself).
    errors.allow(/status of 401/);
    await page.goto(`${base}/login?next=%2Fupload`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('Wrong username or password.').waitFor();
    await view(page, 'login-phone');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Upload' }).waitFor();
    assert.equal(await page.evaluate('document.cookie'), '', 'the session cookie is not readable by scripts');

    // Slow the link, so that progress is seen while a file goes up.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024 });
    const trip = join(files.path, 'Trip');
    mkdirSync(join(trip, 'day1'), { recursive: true });
    writeFileSync(join(trip, 'readme.txt'), 'Where we went\n');
    const photo = png(32, 32);
    writeFileSync(join(trip, 'day1', 'beach.png'), photo);
    const film = randomBytes(3 * 1024 * 1024);
    writeFileSync(join(trip, 'day1', 'film.bin'), film);
    await page.getByLabel('Folder').fill('Holidays');
    await page.getByLabel('Tags').fill('summer');
    await page.locator('#pick-folder').setInputFiles(trip);
    const filmRow = page.locator('.upload-row[data-name="Trip/day1/film.bin"]');
    await filmRow.waitFor();
    await until('progress of the film', async () => /^\d+% · [\d.]+ (KB|MB)\/s/.test((await filmRow.locator('.upload-status').textContent()) ?? ''), 15_000);
    const value = Number(await filmRow.locator('progress').getAttribute('value'));
    assert.ok(value > 0 && value < 100, `progress ${value}`);
    await view(page, 'upload-progress-phone');
    await until('three uploads done', async () => (await page.locator('.upload-row.s-done').count()) === 3, 30_000);
    await view(page, 'upload-done-phone');
    const found = (q: string) => (api('GET', `/library?q=${q}`).json().items as { id: string; title: string; folder: string; tags: string[]; kind: string }[]);
    const beach = found('beach')[0]!;
    assert.equal(beach.folder, 'Holidays/Trip/day1');
    assert.deepEqual(beach.tags, ['summer']);
    assert.equal(found('readme')[0]!.folder, 'Holidays/Trip');
    const filmItem = found('film')[0]!;
    assert.equal(sha(Buffer.from(curl([`${base}/api/v1/library/${filmItem.id}/content`]))), sha(film));

    // Cancel: the server discards what it received; no item, no staged bytes.
    const blobs = join(data.path, 'blobs');
    const count = (dir: string) => { try { return readdirSync(join(blobs, dir), { recursive: true }).filter((f) => statSync(join(blobs, dir, String(f))).isFile()).length; } catch { return 0; } };
    const objectsBefore = count('objects');
    await page.getByLabel('Folder').fill('');
    await page.getByLabel('Tags').fill('');
    const big = join(files.path, 'too-slow.bin');
    writeFileSync(big, randomBytes(12 * 1024 * 1024));
    await page.locator('#pick-files').setInputFiles(big);
    const bigRow = page.locator('.upload-row[data-name="too-slow.bin"]');
    await until('the big file going up', async () => Number(await bigRow.locator('progress').getAttribute('value')) > 0, 15_000);
    await bigRow.getByRole('button', { name: 'Cancel too-slow.bin' }).click();
    await bigRow.getByText('Cancelled').waitFor();
    await bigRow.getByRole('button', { name: 'Retry too-slow.bin' }).waitFor();
    await until('the server to let go of the cancelled upload', async () => count('tmp') === 0 && count('staging') === 0, 10_000);
    assert.equal(count('objects'), objectsBefore);
    assert.deepEqual(found('slow'), []);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

    // A file over the server's limit: refused in words, nothing kept.
    errors.allow(/status of 413/);
    const huge = join(files.path, 'huge.bin');
    writeFileSync(huge, randomBytes(17 * 1024 * 1024));
    await page.locator('#pick-files').setInputFiles(huge);
    const hugeRow = page.locator('.upload-row[data-name="huge.bin"]');
    await hugeRow.locator('.error').waitFor({ timeout: 15_000 });
    assert.match((await hugeRow.locator('.error').textContent()) ?? '', /Too large|too large/);
    assert.deepEqual(found('huge'), []);

    // Edit the tags of one uploaded item, then delete it.
    await page.locator('.upload-row[data-name="Trip/day1/beach.png"]').getByRole('link', { name: /^Open/ }).click();
    await page.getByRole('heading', { name: /^beach/ }).waitFor();
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByRole('textbox', { name: /^Tags/ }).fill('summer, sea');
    await view(page, 'item-edit-phone');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('link', { name: '#sea' }).waitFor();
    assert.deepEqual(api('GET', `/library/${beach.id}`).json().tags, ['summer', 'sea']);
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Delete for good' }).click();
    await page.getByRole('heading', { name: 'Latest in the library' }).waitFor();
    assert.equal(api('GET', `/library/${beach.id}`).status, 404);

    // The folder tree: Holidays › Trip › day1 among the documents and the other kind.
    await page.goto(`${base}/?kind=document`);
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /Holidays/ }).click();
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /Trip/ }).click();
    await page.getByRole('link', { name: /^readme/ }).waitFor();
    assert.match(page.url(), /kind=document&folder=Holidays%2FTrip/);
    await view(page, 'folders-phone');
    assert.deepEqual(errors.take(), []);
    await context.close();
  });

  it('phone: an upload cut off by a lost network resumes by itself, from where the server stands', async () => {
    const { context, page, errors } = await openPage(browser, PHONE);
    // The requests the lost network fails are logged by the browser itself.
    errors.allow(/net::ERR_|Failed to fetch/);
    // Resuming while the server still keeps what the dead request brought (its checkpoint holds the
    // upload a moment) gets tus's 423 (busy) or 409 (offset moved on): the client asks again (HEAD)
    // and goes on, but the browser logs those answers as failed resources.
    errors.allow(/status of (409|423) \((Conflict|Locked)\)$/);
    await loginIn(page, 'admin', ADMIN_PASSWORD);
    await page.goto(`${base}/upload`);
    await page.getByRole('heading', { name: 'Upload' }).waitFor();
    const cdp = await context.newCDPSession(page);
    const net = (offline: boolean) => cdp.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024 });
    await net(false);
    const bytes = randomBytes(8 * 1024 * 1024 + 11);
    const path = join(files.path, 'wifi-drop.bin');
    writeFileSync(path, bytes);
    const logsFrom = server.logs.length;
    await page.locator('#pick-files').setInputFiles(path);
    const row = page.locator('.upload-row[data-name="wifi-drop.bin"]');
    await until('a quarter of the file up', async () => Number(await row.locator('progress').getAttribute('value')) >= 25, 20_000);

    // The network goes (Wi-Fi off: the browser is offline and its connections are dead, here cut
    // by the kernel on the phone's side): the page says it waits, and keeps what it has.
    await net(true);
    runIn(lan.prefix(1), ['ss', '-K', 'dst', lan.hosts[0]!.ip, 'dport', '=', '8080']);
    await row.getByText(/No network|Connection lost/).waitFor({ timeout: 30_000 });
    await view(page, 'upload-offline-phone');
    const shown = Number(await row.locator('progress').getAttribute('value'));
    assert.ok(shown < 100, `while offline the bar shows what the server confirmed, not what the browser handed over (${shown}%)`);
    assert.equal(await row.locator('.upload-row.s-failed, .error').count(), 0, 'not failed');
    // Back: it continues from the server's offset (HEAD), without anyone pressing anything.
    await net(false);
    const logsAtReturn = server.logs.length;
    const statuses: string[] = [];
    let resumedShown = false;
    for (const end = Date.now() + 120_000; !((await row.getAttribute('class')) ?? '').includes('s-done'); ) {
      const status = ((await row.locator('.upload-status').textContent().catch(() => '')) ?? '').trim();
      if (status && statuses.at(-1) !== status) statuses.push(status);
      if (statuses.length > 12) statuses.splice(1, 1);
      if (/resumed at [\d.]+ [KM]B/.test(status)) resumedShown = true;
      assert.ok(Date.now() < end, `the upload done within 2 minutes of the network's return (seen: ${statuses.join(' | ')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const uploads = server.logs.slice(logsFrom).filter((l) => ((l.req as { url?: string } | undefined)?.url ?? '').startsWith('/api/v1/uploads'));
    const methods = uploads.map((l) => (l.req as { method?: string }).method);
    // After the network's return the page asks where the upload stands (HEAD); when bytes remain it
    // sends them (PATCH) and says from where it resumed. When the server had taken every byte before
    // the cut (the answer was lost with the connection), the HEAD is the whole outcome: done.
    const afterReturn = server.logs
      .slice(logsAtReturn)
      .filter((l) => ((l.req as { url?: string } | undefined)?.url ?? '').startsWith('/api/v1/uploads'))
      .map((l) => (l.req as { method?: string }).method);
    assert.ok(afterReturn.includes('HEAD'), `the offset was asked after the network came back (${afterReturn.join()})`);
    if (afterReturn.includes('PATCH')) assert.ok(resumedShown, `"resumed at" shown (seen: ${statuses.join(' | ')})`);
    assert.equal(methods.filter((m) => m === 'POST').length, 1, 'one upload created, not a second one');
    assert.ok(methods.includes('HEAD'), 'the offset was asked');
    const item = (api('GET', '/library?q=wifi').json().items as { id: string }[])[0]!;
    assert.equal(sha(Buffer.from(curl([`${base}/api/v1/library/${item.id}/content`]))), sha(bytes));
    const staging = join(data.path, 'blobs', 'staging');
    const staged = (() => { try { return readdirSync(staging, { recursive: true }).filter((f) => statSync(join(staging, String(f))).isFile()); } catch { return []; } })();
    assert.deepEqual(staged, [], 'nothing staged left');
    await net(false);
    assert.deepEqual(errors.take(), []);
    await context.close();
  });

  it('admin: creates a user, changes a role, resets a password, deletes one; the user changes their password and their other session ends; a member cannot edit others\' items; sorts', async () => {
    const { context, page, errors } = await openPage(browser, DESKTOP);
    await loginIn(page, 'admin', ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Users' }).click();
    const newAccount = page.getByRole('form', { name: 'New account' });
    for (const name of ['carol', 'dave']) {
      await newAccount.getByLabel('Username').fill(name);
      await newAccount.getByLabel(/^Password/).fill(`${name}-first-password`);
      await newAccount.getByRole('button', { name: 'Create account' }).click();
      await page.getByRole('listitem', { name: new RegExp(`^${name}`) }).waitFor();
    }
    const dave = page.getByRole('listitem', { name: /^dave/ });
    await dave.getByLabel('Role of dave').selectOption('admin');
    await page.getByText('dave is now an admin.').waitFor();
    await view(page, 'admin-desktop');
    await dave.getByRole('button', { name: 'Delete dave' }).first().click();
    await dave.getByRole('button', { name: 'Delete dave' }).last().click();
    await until('dave gone', async () => (await page.getByRole('listitem', { name: /^dave/ }).count()) === 0);
    const users = (api('GET', '/users', { token: admin }).json().users as { username: string; role: string }[]).map((u) => u.username);
    assert.ok(users.includes('carol') && !users.includes('dave'), users.join());
    assert.deepEqual(errors.take(), []);

    // Carol on two devices; on the second she changes her password: the first is logged out.
    const first = await openPage(browser, PHONE);
    await loginIn(first.page, 'carol', 'carol-first-password');
    const second = await openPage(browser, DESKTOP);
    await loginIn(second.page, 'carol', 'carol-first-password');
    await second.page.getByRole('link', { name: 'carol' }).click();
    await second.page.getByLabel('Current password').fill('carol-first-password');
    await second.page.getByLabel(/^New password \(/).fill('carol-second-password');
    await second.page.getByLabel('New password again').fill('carol-second-password');
    await second.page.getByRole('button', { name: 'Change password' }).click();
    await second.page.getByText('Password changed.').waitFor();
    await view(second.page, 'account-desktop');
    await second.page.reload();
    await second.page.getByRole('link', { name: 'carol' }).waitFor();
    await first.page.reload();
    await first.page.getByRole('link', { name: 'Log in' }).waitFor();

    // A member sees another member's item without Edit or Delete (the server refuses them too).
    await second.page.goto(`${base}/item/${ids.cafe}`);
    await second.page.getByRole('heading', { name: 'Café au lait' }).waitFor();
    assert.equal(await second.page.getByRole('button', { name: /^(Edit|Delete)/ }).count(), 0, 'no Edit/Delete on an item that is not hers');

    // The admin resets carol's password: her session ends, the new password lets her in.
    await page.reload();
    const carol = page.getByRole('listitem', { name: /^carol/ });
    await carol.getByRole('button', { name: 'Reset password of carol' }).click();
    await carol.getByLabel('New password for carol').fill('carol-reset-password');
    await carol.getByRole('button', { name: 'Set password', exact: true }).click();
    await page.getByText('New password set for carol; their sessions have ended.').waitFor();
    await second.page.reload();
    await second.page.getByRole('link', { name: 'Log in' }).waitFor();
    await loginIn(second.page, 'carol', 'carol-reset-password');

    // Sorts: by title, in the address, the list in that order (the 34 "Field note NN" share their
    // first ten letters, which the sort score holds: the rest of the title orders them).
    await page.goto(base);
    await page.getByLabel('Sort').selectOption('title');
    await until('the address to say sort=title', async () => page.url().includes('sort=title'));
    await page.locator('.items[data-for*="sort=title"]').waitFor();
    const titles = (await page.locator('.items > li .title').allTextContents()).map((t) => t.trim());
    assert.deepEqual(titles.slice(0, 2), ['Café au lait', 'Cafeteria menu'], titles.join());
    assert.deepEqual(titles.slice(2, 30), [...Array(28).keys()].map((n) => `Field note ${String(n).padStart(2, '0')}`), titles.join());
    await page.getByLabel('Sort').selectOption('size');
    await page.locator('.items[data-for*="sort=size"]').waitFor();
    const top = (await page.locator('.items > li .title').first().textContent())?.trim();
    const largest = (api('GET', '/library?sort=size&limit=1').json().items as { title: string }[])[0]!.title;
    assert.equal(top, largest, 'the largest item first');
    assert.deepEqual([...first.errors.take(), ...second.errors.take(), ...errors.take()], []);
    await first.context.close();
    await second.context.close();
    await context.close();
  });

  it('phone: an item uploaded over FTP meanwhile appears in the open library by itself', async () => {
    const { context, page, errors } = await openPage(browser, PHONE);
    await page.goto(base);
    await page.getByRole('heading', { name: 'Latest in the library' }).waitFor();
    await page.waitForLoadState('networkidle').catch(() => undefined);
    const path = join(files.path, 'Arrived by FTP.txt');
    writeFileSync(path, 'hello from ftp\n');
    curl(['-T', path, `ftp://admin:${ADMIN_PASSWORD}@${lan.hosts[0]!.ip}:${server.ftpPort}/upload/`]);
    await page.locator('.items > li.fresh').getByText(/Arrived by FTP/).waitFor({ timeout: 10_000 });
    await view(page, 'live-phone');
    assert.deepEqual(errors.take(), []);
    await context.close();
  });

  it('every view at desktop size, and the phone views not seen yet: no serious accessibility violation', async () => {
    const desk = await openPage(browser, DESKTOP);
    await desk.page.goto(base);
    await desk.page.getByText('Field note 33').waitFor();
    await view(desk.page, 'library-desktop');
    await desk.page.goto(`${base}/?q=cafe`);
    await desk.page.getByText('Café au lait').waitFor();
    await view(desk.page, 'search-desktop');
    await desk.page.goto(`${base}/item/${ids.blue}`);
    await desk.page.getByRole('heading', { name: 'Kind of Blue' }).waitFor();
    await view(desk.page, 'item-audio-desktop');
    await desk.page.goto(`${base}/item/${ids.sunset}`);
    await desk.page.getByRole('img', { name: 'Sunset over the bay' }).waitFor();
    await view(desk.page, 'item-image-desktop');
    await desk.page.goto(`${base}/login`);
    await desk.page.getByRole('heading', { name: 'Log in' }).waitFor();
    await view(desk.page, 'login-desktop');
    await loginIn(desk.page, 'admin', ADMIN_PASSWORD);
    await desk.page.getByRole('link', { name: 'Upload' }).click();
    await desk.page.getByRole('heading', { name: 'Upload' }).waitFor();
    // A file dropped on the page (a drop event as the browser makes it, with a DataTransfer).
    await desk.page.evaluate(`(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped bytes\\n'], 'dropped.txt', { type: 'text/plain' }));
      const zone = document.querySelector('.dropzone');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
    await desk.page.locator('.upload-row.s-done[data-name="dropped.txt"]').waitFor();
    const dropped = api('GET', '/library?q=dropped').json().items as { id: string }[];
    assert.equal(curl([`${base}/api/v1/library/${dropped[0]!.id}/content`]).toString(), 'dropped bytes\n');
    await view(desk.page, 'upload-desktop');
    await desk.page.goto(`${base}/no/such/page`);
    await desk.page.getByRole('heading', { name: 'Page not found' }).waitFor();
    assert.deepEqual(desk.errors.take(), []);
    await desk.context.close();

    const phone = await openPage(browser, PHONE);
    await loginIn(phone.page, 'admin', ADMIN_PASSWORD);
    await phone.page.goto(`${base}/admin`);
    await phone.page.getByRole('listitem', { name: /^carol/ }).waitFor();
    await view(phone.page, 'admin-phone');
    await phone.page.goto(`${base}/account`);
    await phone.page.getByRole('heading', { name: 'Change your password' }).waitFor();
    await view(phone.page, 'account-phone');
    await phone.page.goto(`${base}/upload`);
    await view(phone.page, 'upload-phone');
    await phone.page.emulateMedia({ colorScheme: 'dark' });
    await phone.page.goto(`${base}/item/${ids.cafe}`);
    await phone.page.getByRole('heading', { name: 'Café au lait' }).waitFor();
    await view(phone.page, 'item-dark-phone');
    assert.deepEqual(phone.errors.take(), []);
    await phone.context.close();
  });

  it('at 360 px: no view scrolls sideways, every control is a 44 px touch target, motion stops when asked, the keyboard reaches the search', async () => {
    const narrow = await openPage(browser, { ...PHONE, viewport: { width: 360, height: 740 }, reducedMotion: 'reduce' });
    const page = narrow.page;
    await loginIn(page, 'admin', ADMIN_PASSWORD);
    // Controls people tap: buttons, fields, the menu and chips (links inside running text are exempt, as WCAG's target size rule says).
    const measure = `(() => {
      const small = [];
      for (const el of document.querySelectorAll('button, input:not([type=hidden]), select, textarea, summary, nav a, a.chip, a.button')) {
        // A check box inside its label is tapped through the label.
        const target = el.matches('input[type=checkbox], input[type=radio]') && el.closest('label') ? el.closest('label') : el;
        const r = target.getBoundingClientRect();
        const style = getComputedStyle(el);
        if (r.width === 0 || r.height === 0 || style.visibility === 'hidden' || el.closest('.visually-hidden')) continue;
        if (el.matches('input[type=file]') && (style.opacity === '0' || r.width <= 1)) continue;
        if (r.height < 44 || r.width < 44) small.push((el.getAttribute('aria-label') || el.textContent || el.id || el.tagName).trim().slice(0, 40) + ' ' + Math.round(r.width) + 'x' + Math.round(r.height));
      }
      const moving = [...document.querySelectorAll('*')].filter((el) => {
        const st = getComputedStyle(el);
        return parseFloat(st.transitionDuration) > 0 || (st.animationName !== 'none' && parseFloat(st.animationDuration) > 0);
      }).length;
      return { width: document.documentElement.scrollWidth, small, moving };
    })()`;
    const pages: [string, () => Promise<unknown>][] = [
      ['/', () => page.getByText('Field note 33').waitFor()],
      ['/?q=cafe', () => page.getByText('Café au lait').waitFor()],
      [`/item/${ids.blue}`, () => page.getByRole('heading', { name: 'Kind of Blue' }).waitFor()],
      ['/upload', () => page.getByRole('heading', { name: 'Upload' }).waitFor()],
      ['/nearby', () => page.getByRole('heading', { name: 'Nearby' }).waitFor()],
      ['/admin', () => page.getByRole('listitem', { name: /^carol/ }).waitFor()],
      ['/account', () => page.getByRole('heading', { name: 'Change your password' }).waitFor()],
    ];
    for (const [path, ready] of pages) {
      await page.goto(`${base}${path}`);
      await ready();
      const m = (await page.evaluate(measure)) as { width: number; small: string[]; moving: number };
      assert.ok(m.width <= 360, `${path} is ${m.width} px wide at 360`);
      assert.deepEqual(m.small, [], `${path}: controls under 44 px`);
      assert.equal(m.moving, 0, `${path}: something still moves with reduced motion`);
      const name = path === '/' ? 'library' : path.startsWith('/?') ? 'search' : path.split('/')[1];
      await page.screenshot({ path: join(OUT, `${name}-360-phone.png`), fullPage: true });
    }
    // The keyboard alone: from the top of the library, Tab reaches the search box, and typing searches.
    await page.goto(base);
    await page.getByText('Field note 33').waitFor();
    let focused = '';
    for (let i = 0; i < 15 && focused !== 'search'; i++) {
      await page.keyboard.press('Tab');
      focused = (await page.evaluate('document.activeElement?.id ?? ""')) as string;
    }
    assert.equal(focused, 'search', 'Tab reaches the search box');
    await page.keyboard.type('kind of');
    await page.getByRole('link', { name: /Kind of Blue/ }).first().waitFor();
    assert.deepEqual(narrow.errors.take(), []);
    await narrow.context.close();
  });
});
