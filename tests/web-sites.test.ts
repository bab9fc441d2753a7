/**
 * Linked sites in the web app, in a real browser: two standalone sites on a test LAN of network
 * namespaces (each at its own non-loopback address, its own private Redis and data folder) and
 * Debian's Chromium on a third host. An admin invites from site A's page (the code, its QR code
 * and a copy that works on plain http), the admin of site B links with that code on B's page, and
 * both see the link; a search across from A shows B's item marked with B, whose page shows its
 * facts and whose download through A is byte-exact; a frozen B is named as not answering, and
 * shown unreachable; unlinking (confirmed) ends the link on both sides. The QR codes on the page
 * (the site's address, the invite) are read back from screenshots with a QR decoder at phone size.
 * A's phone on its Nearby view sees B's desktop tab under Barn and sends it a file that B's download
 * manager receives byte-exact.
 * axe-core on each new view; screenshots under clients/web/test-output/sites/.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import jsQR from 'jsqr';
import type { Browser, Locator, Page } from 'playwright-core';
import { browserUnavailable, DESKTOP, launchBrowser, openPage, PHONE, runIn, seriousA11yViolations, type TestBrowser } from './helpers/browser.js';
import { tempDir } from './helpers/infra.js';
import { createLan, lanUnavailable, type TestLan } from './helpers/netns.js';
import { startServer, type TestServer } from './helpers/server.js';

const skip = lanUnavailable() ?? browserUnavailable();
const OUT = fileURLToPath(new URL('../clients/web/test-output/sites/', import.meta.url));
const ADMIN_PASSWORD = 'admin-password';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The pixels of a PNG as Chromium writes screenshots (8-bit RGB or RGBA, not interlaced), as RGBA. */
function decodePng(png: Buffer): { width: number; height: number; data: Uint8ClampedArray } {
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.toString('latin1', pos + 4, pos + 8);
    const body = png.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      assert.equal(body[8], 8, '8-bit PNG');
      assert.equal(body[12], 0, 'not interlaced');
      channels = body[9] === 6 ? 4 : body[9] === 2 ? 3 : assert.fail(`PNG colour type ${body[9]}`);
    } else if (type === 'IDAT') idat.push(body);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[y * stride + x - channels]! : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const predictor = [0, a, b, (a + b) >> 1, paeth][filter]!;
      pixels[y * stride + x] = (line[x]! + predictor) & 0xff;
    }
  }
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    data[i * 4] = pixels[i * channels]!;
    data[i * 4 + 1] = pixels[i * channels + 1]!;
    data[i * 4 + 2] = pixels[i * channels + 2]!;
    data[i * 4 + 3] = channels === 4 ? pixels[i * channels + 3]! : 255;
  }
  return { width, height, data };
}

/** What a phone's scanner reads from a QR code as drawn on the screen (a screenshot of it, with a margin of page around). */
async function scan(qr: Locator): Promise<string | null> {
  const box = (await qr.boundingBox())!;
  const margin = 12;
  const png = await qr.page().screenshot({ clip: { x: box.x - margin, y: box.y - margin, width: box.width + 2 * margin, height: box.height + 2 * margin } });
  const { width, height, data } = decodePng(png);
  return jsQR(data, width, height)?.data ?? null;
}

describe('linked sites in the web app, in Chromium on a LAN', { skip: skip ?? false, timeout: 180_000 }, () => {
  let lan: TestLan;
  const sites: { name: string; server: TestServer; data: { path: string; cleanup(): void }; admin: string; siteId: string; base: string }[] = [];
  let files: { path: string; cleanup(): void };
  let tb: TestBrowser;
  let browser: Browser;
  const payload = randomBytes(3 * 1024 * 1024 + 17);
  let remoteId = '';

  /** curl on the browser's host. */
  const curl = (args: string[], input?: Buffer) => runIn(lan.prefix(2), ['curl', '-sS', '--max-time', '30', ...args], input);
  const api = (base: string, method: string, path: string, opts: { token?: string; json?: unknown; form?: string[] } = {}) => {
    const args = ['-X', method, '-o', '-', '-w', '\n%{http_code}', `${base}/api/v1${path}`];
    if (opts.token) args.push('-H', `authorization: Bearer ${opts.token}`);
    if (opts.json !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', '@-');
    for (const f of opts.form ?? []) args.push('-F', f);
    const out = curl(args, opts.json !== undefined ? Buffer.from(JSON.stringify(opts.json)) : undefined).toString('utf8');
    const i = out.lastIndexOf('\n');
    const body = out.slice(0, i);
    return { status: Number(out.slice(i + 1)), body, json: () => JSON.parse(body) as Record<string, unknown> };
  };
  const view = async (page: Page, name: string) => {
    await page.waitForLoadState('networkidle').catch(() => undefined);
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
    assert.deepEqual(await seriousA11yViolations(page), [], `accessibility of ${name}`);
  };
  const loginIn = async (page: Page, base: string) => {
    await page.goto(`${base}/login`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('link', { name: 'admin' }).waitFor();
  };
  const links = (i: number) => api(sites[i]!.base, 'GET', '/federation/links', { token: sites[i]!.admin }).json().links as { siteId: string; name: string; state: string }[];

  before(async () => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    lan = createLan(3);
    files = tempDir('nondivy-websites-');
    for (const [i, name] of ['Attic', 'Barn'].entries()) {
      const data = tempDir();
      const server = await startServer(
        // No NONDIVY_PUBLIC_URL: each site advertises its LAN address, as a site on a real LAN does.
        { NONDIVY_DATA_DIR: data.path, NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD, NONDIVY_HTTP_HOST: '0.0.0.0', NONDIVY_FTP_HOST: '0.0.0.0', NONDIVY_SITE_NAME: name },
        { prefix: lan.prefix(i), host: lan.hosts[i]!.ip, port: 8080 },
      ).catch((err) => {
        data.cleanup();
        throw err;
      });
      const base = server.url;
      const login = api(base, 'POST', '/auth/login', { json: { username: 'admin', password: ADMIN_PASSWORD } });
      assert.equal(login.status, 200, login.body);
      const info = api(base, 'GET', '/site').json();
      sites.push({ name, server, data, admin: login.json().token as string, siteId: info.siteId as string, base });
    }
    const path = join(files.path, 'harvest-ledger.bin');
    writeFileSync(path, payload);
    const up = api(sites[1]!.base, 'POST', '/library', { token: sites[1]!.admin, form: ['title=Harvest ledger 1907', 'tags=farm,ledger', 'description=Yields by field, in a clerk’s hand.', `file=@${path};type=application/octet-stream`] });
    assert.equal(up.status, 201, up.body);
    remoteId = up.json().id as string;
    writeFileSync(join(files.path, 'songs.txt'), 'la la la\n');
    assert.equal(api(sites[0]!.base, 'POST', '/library', { token: sites[0]!.admin, form: ['title=Harvest songs', `file=@${join(files.path, 'songs.txt')};type=text/plain`] }).status, 201);
    tb = await launchBrowser(lan.prefix(2));
    browser = tb.browser;
  });

  after(async () => {
    await tb?.close();
    for (const s of sites) {
      s.server.child.kill('SIGCONT');
      await s.server.stop();
      s.data.cleanup();
    }
    lan?.cleanup();
    files?.cleanup();
  });

  it('GET /api/v1/site names the site and the address it advertises, to anyone', () => {
    const res = api(sites[0]!.base, 'GET', '/site');
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json(), { siteId: sites[0]!.siteId, name: 'Attic', urls: [`http://${lan.hosts[0]!.ip}:8080`] });
  });

  it('admins invite on one site and link on the other in the page; a search across shows, opens and downloads the other site’s item; a silent site is named; unlink', async () => {
    const [a, b] = sites as [(typeof sites)[0], (typeof sites)[0]];
    const phoneA = await openPage(browser, PHONE);
    const deskB = await openPage(browser, DESKTOP);
    // Expected refusals, which Chromium logs: a bad invite code (400), an unlinked site's item (404).
    phoneA.errors.allow(/status of 404/);
    deskB.errors.allow(/status of 400/);
    await loginIn(phoneA.page, a.base);
    await loginIn(deskB.page, b.base);

    // Site A's admin page: its address as text and as a QR code a phone reads.
    const pageA = phoneA.page;
    await pageA.goto(`${a.base}/admin`);
    const addressQr = pageA.getByRole('img', { name: `QR code of this site’s address: ${a.base}` });
    await addressQr.waitFor();
    await pageA.getByText(a.base, { exact: true }).waitFor();
    await addressQr.scrollIntoViewIfNeeded();
    assert.equal(await scan(addressQr), a.base, 'the address QR code scans to the address');
    await pageA.getByText('No linked sites yet.').waitFor();

    // The invite: its code, copied with the button (plain http: no async clipboard), and its QR code.
    await pageA.getByRole('button', { name: 'Make an invite' }).click();
    const codeField = pageA.getByLabel(/^Invite code \(valid until /);
    await codeField.waitFor();
    const code = await codeField.inputValue();
    assert.match(code, /^\S{40,}$/);
    const inviteQr = pageA.getByRole('img', { name: `QR code of the invite code: ${code}` });
    await inviteQr.scrollIntoViewIfNeeded();
    assert.equal(await scan(inviteQr), code, 'the invite QR code scans to the code');
    await pageA.getByRole('button', { name: 'Copy the code' }).click();
    await pageA.getByText('Copied.').waitFor();
    assert.equal(await codeField.evaluate((t: { value: string; selectionStart: number; selectionEnd: number }) => t.value.slice(t.selectionStart, t.selectionEnd)), code, 'the whole code selected');
    // What the button put on the clipboard, pasted into this page's own code field.
    const pasteHere = pageA.getByLabel('Invite code from the other site');
    await pasteHere.focus();
    await pageA.keyboard.press('Control+V');
    assert.equal(await pasteHere.inputValue(), code, 'the clipboard holds the code');
    await pasteHere.fill('');
    await view(pageA, 'admin-invite-phone');

    // Site B's admin pastes the code (typed: another browser context has another clipboard) and links.
    const pageB = deskB.page;
    await pageB.goto(`${b.base}/admin`);
    await pageB.getByLabel('Invite code from the other site').fill(`  ${code}\n`);
    await pageB.getByRole('button', { name: 'Link', exact: true }).click();
    await pageB.getByText('Linked with “Attic”.').waitFor();
    const attic = pageB.getByRole('listitem', { name: 'Attic' });
    await attic.getByText('Online', { exact: true }).waitFor();
    await attic.getByText(/^Last contact /).waitFor();
    await attic.getByText(a.base).waitFor();
    await view(pageB, 'admin-linked-desktop');
    // A bad code is refused in words, and nothing changes.
    await pageB.getByLabel('Invite code from the other site').fill('not-a-code');
    await pageB.getByRole('button', { name: 'Link', exact: true }).click();
    await pageB.locator('.use-code .error').waitFor();
    assert.equal(links(1).length, 1);

    // A sees the link made from B's side.
    await pageA.reload();
    const barn = pageA.getByRole('listitem', { name: 'Barn' });
    await barn.getByText('Online', { exact: true }).waitFor();
    await view(pageA, 'admin-linked-phone');

    // Search across from A: B's item is marked with B; A's own item is there too.
    await pageA.goto(a.base);
    await pageA.getByLabel('Search the library').fill('harvest');
    await pageA.getByRole('heading', { name: 'Results for “harvest”' }).waitFor();
    await pageA.getByLabel('Include linked sites').check();
    const remoteRow = pageA.locator(`.items > li[data-site="${b.siteId}"]`);
    await remoteRow.waitFor();
    assert.equal(await remoteRow.locator('.site-badge').textContent(), 'Barn');
    await pageA.getByText('Harvest songs').waitFor();
    await pageA.getByText('Also searched: Barn (1).', { exact: false }).waitFor();
    assert.match(pageA.url(), /q=harvest&sites=1/);
    await view(pageA, 'search-across-phone');

    // B's item: its facts, and a download through A's gateway into the download manager.
    await remoteRow.getByRole('link', { name: /^Harvest ledger 1907/ }).click();
    await pageA.getByRole('heading', { name: 'Harvest ledger 1907' }).waitFor();
    assert.equal(new URL(pageA.url()).pathname, `/sites/${b.siteId}/item/${remoteId}`);
    await pageA.getByText(sha(payload)).waitFor();
    await pageA.getByText('Yields by field, in a clerk’s hand.').waitFor();
    await pageA.locator('.facts').getByText('Barn').waitFor();
    await view(pageA, 'remote-item-phone');
    const [download] = await Promise.all([pageA.waitForEvent('download'), pageA.getByRole('link', { name: /^Download/ }).click()]);
    assert.equal(download.suggestedFilename(), 'harvest-ledger.bin');
    assert.equal(sha(readFileSync((await download.path())!)), sha(payload), 'byte-exact through the gateway');
    // Reloaded (no search in this tab's memory for a fresh context): the page still works.
    await pageA.reload();
    await pageA.getByRole('heading', { name: 'Harvest ledger 1907' }).waitFor();

    // The same search on a desktop, from the address alone.
    const deskA = await openPage(browser, DESKTOP);
    await deskA.page.goto(`${a.base}/?q=harvest&sites=1`);
    await deskA.page.locator(`.items > li[data-site="${b.siteId}"]`).waitFor();
    await view(deskA.page, 'search-across-desktop');

    // B stops answering: the search says so by name, and the link shows B unreachable.
    b.server.child.kill('SIGSTOP');
    try {
      await deskA.page.reload();
      const note = deskA.page.locator(`.site-answers [data-site="${b.siteId}"]`);
      await note.waitFor();
      assert.match((await note.textContent())!, /^Barn is missing from these results: The linked site did not answer within \d+ ms\.$/);
      await deskA.page.getByText('Harvest songs').waitFor();
      assert.equal(await deskA.page.locator(`.items > li[data-site="${b.siteId}"]`).count(), 0);
      await view(deskA.page, 'search-site-down-desktop');
      await pageA.goto(`${a.base}/admin`);
      await pageA.getByRole('listitem', { name: 'Barn' }).getByText('Unreachable', { exact: true }).waitFor();
      await view(pageA, 'admin-unreachable-phone');
    } finally {
      b.server.child.kill('SIGCONT');
    }
    // Back: the next search has B again.
    await deskA.page.reload();
    await deskA.page.locator(`.items > li[data-site="${b.siteId}"]`).waitFor();

    // Nearby across sites: B's desktop tab is a device; A's phone lists it under Barn and sends it
    // a file (checksummed in the page first), B accepts and its download manager gets the bytes.
    await deskB.context.addInitScript(`localStorage.setItem('nondivy.deviceName', 'barn-desktop')`);
    await pageB.goto(`${b.base}/nearby`);
    await pageB.locator('.me-name', { hasText: 'barn-desktop' }).waitFor();
    await pageA.goto(`${a.base}/nearby`);
    await pageA.getByRole('heading', { name: 'On linked sites' }).waitFor();
    const farCard = pageA.locator('.linked-site', { hasText: 'Barn' }).locator('.device', { hasText: 'barn-desktop' });
    await farCard.waitFor({ timeout: 25_000 });
    await farCard.getByText('texts stay on this site').waitFor();
    assert.equal(await farCard.getByRole('button', { name: 'Send a text' }).count(), 0, 'no texts across sites');
    await view(pageA, 'nearby-linked-phone');
    const parcel = randomBytes(5 * 1024 * 1024 + 3);
    writeFileSync(join(files.path, 'parcel.bin'), parcel);
    const received: string[] = [];
    pageB.on('download', (d) => void d.path().then((p) => received.push(p)));
    await farCard.locator('input.pick-files').setInputFiles(join(files.path, 'parcel.bin'));
    const offered = pageB.locator('.transfer', { hasText: 'on Attic' }).first();
    await offered.getByText('parcel.bin').waitFor({ timeout: 20_000 });
    await view(pageB, 'nearby-offer-from-site-desktop');
    await offered.getByRole('button', { name: 'Accept' }).click();
    await pageA.locator('.transfer', { hasText: 'To barn-desktop' }).getByText('Completed').waitFor({ timeout: 30_000 });
    await offered.getByText('Completed').waitFor({ timeout: 30_000 });
    for (const end = Date.now() + 15_000; received.length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
    assert.equal(received.length, 1, 'one download on B');
    assert.equal(sha(readFileSync(received[0]!)), sha(parcel), 'byte-exact across sites');
    await view(pageA, 'nearby-sent-to-site-phone');

    // Unlink from A, confirmed: gone on both sides.
    await pageA.goto(`${a.base}/admin`);
    const row = pageA.getByRole('listitem', { name: 'Barn' });
    await row.getByRole('button', { name: 'Unlink Barn' }).click();
    await row.getByRole('group', { name: 'Confirm unlinking Barn' }).waitFor();
    assert.equal(links(0).length, 1, 'nothing happens before the confirmation');
    await row.getByRole('button', { name: 'Cancel' }).click();
    await row.getByRole('button', { name: 'Unlink Barn' }).click();
    await row.getByRole('button', { name: 'Unlink Barn' }).last().click();
    await pageA.getByText('Unlinked from “Barn” on both sides.').waitFor();
    await pageA.getByText('No linked sites yet.').waitFor();
    assert.deepEqual(links(0), []);
    assert.deepEqual(links(1), []);
    // Its item's page now says so in words.
    await pageA.goto(`${a.base}/sites/${b.siteId}/item/${remoteId}`);
    await pageA.getByRole('alert').getByText(/Barn is not linked/).waitFor();

    assert.deepEqual([...phoneA.errors.take(), ...deskB.errors.take(), ...deskA.errors.take()], []);
    await phoneA.context.close();
    await deskA.context.close();
    await deskB.context.close();
  });
});
