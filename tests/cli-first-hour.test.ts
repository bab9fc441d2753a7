/**
 * A new user's first hour with the `nondivy` CLI (child processes) against two linked sites:
 * get ID@SITE (and --site) through this site's gateway with resume and SHA-256 check, site names
 * in `search --all`, `receive` into the Downloads folder and its rejection reason when it cannot
 * ask, `passwd` and `users` end to end, and an example in every command's --help.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { login, upload } from './helpers/http.js';
import { tempDir } from './helpers/infra.js';
import { startSite, type Site } from './helpers/sites.js';

const CLI = 'clients/cli/bin/nondivy.mjs';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Run {
  code: number | null;
  out: string;
  err: string;
}

describe('the nondivy CLI for a new user', () => {
  let a: Site;
  let b: Site;
  let work: { path: string; cleanup(): void };
  const children: ReturnType<typeof spawn>[] = [];
  /** A member of site a (not an admin): what most users are. */
  let member: string;

  /**
   * Runs the CLI against `site` (as its admin unless `token` is given) with HOME in the test's
   * folder; stdin is not a terminal: closed, or the given text.
   */
  const cli = (site: Site, args: string[], opts: { env?: Record<string, string>; stdin?: string; token?: string } = {}) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: work.path, NONDIVY_SERVER: site.url, NONDIVY_TOKEN: opts.token ?? site.admin, ...opts.env },
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    children.push(child);
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    const done = new Promise<Run>((r) => child.once('exit', (code) => r({ code, out, err })));
    /** Resolves once stdout holds `text` (fails if the process exits first). */
    const saw = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => out.includes(text) && (child.stdout!.off('data', check), resolve());
        child.stdout!.on('data', check);
        check();
        void done.then((r) => reject(new Error(`exited (${r.code}) before printing "${text}": ${r.err}`)));
      });
    return { child, done, saw };
  };
  const run = async (site: Site, args: string[], opts?: Parameters<typeof cli>[2]) => {
    const res = await cli(site, args, opts).done;
    assert.equal(res.code, 0, `nondivy ${args.join(' ')}: ${res.err}`);
    return res.out;
  };

  before(async () => {
    work = tempDir('nondivy-firsthour-');
    [a, b] = await Promise.all([startSite('Hilltop'), startSite('Riverside')]);
    const invite = JSON.parse(await run(a, ['link', '--json'])) as { code: string };
    await run(b, ['link', invite.code]);
    const created = await a.call('/users', { method: 'POST', token: a.admin, json: { username: 'mia', password: 'mia-password-1' } });
    assert.equal(created.status, 201);
    member = await login(a.api, 'mia', 'mia-password-1');
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await Promise.all([a?.close(), b?.close()]);
    work?.cleanup();
  });

  it('has an example in the --help of every command', async () => {
    const top = await run(a, ['--help']);
    const names = [...top.split('Commands:')[1]!.split('Common options')[0]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!);
    for (const required of ['get', 'search', 'receive', 'passwd', 'users', 'link', 'start']) assert.ok(names.includes(required), `${required} in ${names.join(' ')}`);
    for (const name of names) {
      const help = await run(a, [name, '--help']);
      assert.match(help, /^Examples?:\n {2}nondivy /m, `nondivy ${name} --help shows an example`);
    }
  });

  it('search --all names the linked site, and get ID@SITE fetches its item through this site, resuming', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const res = await upload(b.api, b.admin, bytes, 'river-atlas.bin', { title: 'River Atlas' });
    assert.equal(res.status, 201);
    const item = (await res.json()) as { id: string; sha256: string };

    // A member sees the site by name, never by its id.
    const table = await run(a, ['search', 'atlas', '--all'], { token: member });
    assert.match(table, /River Atlas/);
    assert.match(table, /\bRiverside\b/);
    assert.ok(!table.includes(b.siteId), `no site id in:\n${table}`);

    // Half of the file is already here, as an interrupted download leaves it.
    const dir = join(work.path, 'atlas');
    mkdirSync(dir);
    const half = 1536 * 1024;
    writeFileSync(join(dir, `.river-atlas.bin.${item.sha256.slice(0, 16)}.nondivy-part`), bytes.subarray(0, half));
    const got = JSON.parse(await run(a, ['get', `${item.id}@Riverside`, '--dir', dir, '--json'], { token: member })) as { path: string; resumedFrom: number; site: string; sha256: string };
    assert.equal(got.resumedFrom, half, 'resumed where the part file ended');
    assert.equal(got.site, b.siteId);
    assert.equal(got.sha256, item.sha256);
    assert.equal(sha(readFileSync(join(dir, 'river-atlas.bin'))), sha(bytes));
    assert.deepEqual(readdirSync(dir), ['river-atlas.bin'], 'no part file left');

    // --site takes the name too (as an admin: resolved from the links), and a second copy gets a new name only if different.
    const dir2 = join(work.path, 'atlas2');
    const again = JSON.parse(await run(a, ['get', item.id, '--site', 'Riverside', '--dir', dir2, '--json'])) as { resumedFrom: number; path: string };
    assert.equal(again.resumedFrom, 0);
    assert.equal(sha(readFileSync(join(dir2, 'river-atlas.bin'))), sha(bytes));

    // The site id works as well; an unknown site is one clear error naming the linked ones.
    const byId = await run(a, ['get', `${item.id}@${b.siteId}`, '--dir', dir2], { token: member });
    assert.match(byId, /already downloaded/);
    const unknown = await cli(a, ['get', `${item.id}@Nowhere`, '--dir', dir2], { token: member }).done;
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /no linked site Nowhere .*Riverside/);
  });

  it('get ID@SITE resumes after being killed mid-download', async () => {
    const bytes = randomBytes(48 * 1024 * 1024);
    const res = await upload(b.api, b.admin, bytes, 'big-river.bin', { title: 'Big River' });
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    const dir = join(work.path, 'big');
    const first = cli(a, ['get', `${id}@Riverside`, '--dir', dir], { token: member });
    // Kill it once some bytes (not all) are in the part file.
    const part = () => readdirSync(dir).find((n) => n.endsWith('.nondivy-part'));
    const t0 = Date.now();
    for (;;) {
      const name = existsSync(dir) ? part() : undefined;
      if (name && statSync(join(dir, name), { throwIfNoEntry: false })?.size) break;
      assert.ok(Date.now() - t0 < 20_000, 'the download starts');
      await new Promise((r) => setTimeout(r, 5));
    }
    first.child.kill('SIGKILL');
    await first.done;
    const kept = statSync(join(dir, part()!)).size;
    assert.ok(kept > 0 && kept < bytes.length, `a partial file (${kept} bytes)`);
    const got = JSON.parse(await run(a, ['get', `${id}@Riverside`, '--dir', dir, '--json'], { token: member })) as { resumedFrom: number };
    assert.ok(got.resumedFrom >= kept, `resumed at ${got.resumedFrom} (kept ${kept})`);
    assert.equal(sha(readFileSync(join(dir, 'big-river.bin'))), sha(bytes));
  });

  it('receive without a terminal and without --yes rejects with a reason the sender sees', async () => {
    const dir = join(work.path, 'inbox');
    const receiver = cli(a, ['receive', '--dir', dir, '--once', '--listen', '127.0.0.1:0'], { env: { NONDIVY_DEVICE: 'desk' } });
    await receiver.saw('receiving into');
    const src = join(work.path, 'note.txt');
    writeFileSync(src, 'hello');
    const sent = await cli(a, ['send', src, '--to', 'desk'], { env: { NONDIVY_DEVICE: 'phone' } }).done;
    assert.equal(sent.code, 1);
    assert.match(sent.err, /rejected the offer: the receiver is not at a terminal; run receive with --yes to accept/);
    const received = await receiver.done;
    assert.equal(received.code, 1);
    assert.match(received.out, /rejected \S+: the receiver is not at a terminal; run receive with --yes to accept/);
    assert.match(received.err, /stdin is not a terminal/);
  });

  it('receive puts files in the Downloads folder: ~/Downloads, or XDG_DOWNLOAD_DIR of user-dirs.dirs', async () => {
    const receiveOnce = async (home: string, device: string) => {
      const receiver = cli(a, ['receive', '--yes', '--once', '--listen', '127.0.0.1:0'], { env: { HOME: home, NONDIVY_DEVICE: device } });
      await receiver.saw('receiving into');
      const src = join(work.path, `${device}.txt`);
      writeFileSync(src, `for ${device}`);
      await run(a, ['send', src, '--to', device], { env: { NONDIVY_DEVICE: 'phone' } });
      const res = await receiver.done;
      assert.equal(res.code, 0, res.err);
      return res.out;
    };
    const plain = join(work.path, 'home-plain');
    mkdirSync(plain);
    const out = await receiveOnce(plain, 'plain-pc');
    assert.match(out, new RegExp(`receiving into ${join(plain, 'Downloads')} `));
    assert.equal(readFileSync(join(plain, 'Downloads', 'plain-pc.txt'), 'utf8'), 'for plain-pc');

    const desktop = join(work.path, 'home-desktop');
    mkdirSync(join(desktop, '.config'), { recursive: true });
    writeFileSync(join(desktop, '.config', 'user-dirs.dirs'), '# written by xdg-user-dirs-update\nXDG_DESKTOP_DIR="$HOME/Desktop"\nXDG_DOWNLOAD_DIR="$HOME/Téléchargements"\n');
    await receiveOnce(desktop, 'desktop-pc');
    assert.equal(readFileSync(join(desktop, 'Téléchargements', 'desktop-pc.txt'), 'utf8'), 'for desktop-pc');
    assert.ok(!existsSync(join(desktop, 'Downloads')));
  });

  it('users (admins) and passwd manage accounts end to end', async () => {
    // add, with the password on stdin (no terminal here)
    const added = JSON.parse(await run(a, ['users', 'add', 'bob', '--json'], { stdin: 'bob-password-1\n' })) as { username: string; role: string };
    assert.deepEqual([added.username, added.role], ['bob', 'member']);
    assert.match(await run(a, ['users']), /^bob\s+member\s/m);
    // a short password: the site's own words, exit 1
    const short = await cli(a, ['users', 'add', 'cleo'], { stdin: 'short\n' }).done;
    assert.equal(short.code, 1);
    assert.match(short.err, /8 characters/);
    // no password at all
    const none = await cli(a, ['users', 'add', 'cleo']).done;
    assert.equal(none.code, 1);
    assert.match(none.err, /no password for cleo on line 1 of stdin/);

    await run(a, ['users', 'role', 'bob', 'admin']);
    assert.match(await run(a, ['users']), /^bob\s+admin\s/m);
    await run(a, ['users', 'role', 'bob', 'member']);

    // passwd: current and new from stdin lines
    let bob = await login(a.api, 'bob', 'bob-password-1');
    const wrong = await cli(a, ['passwd'], { token: bob, stdin: 'not-the-password\nbob-password-2\n' }).done;
    assert.equal(wrong.code, 1);
    assert.match(wrong.err, /^nondivy: .*password/m);
    await run(a, ['passwd', '--password-stdin'], { token: bob, stdin: 'bob-password-1\r\nbob-password-2\r\n' });
    await assert.rejects(login(a.api, 'bob', 'bob-password-1'));
    bob = await login(a.api, 'bob', 'bob-password-2');

    // a member cannot manage accounts: the site's refusal, exit 1
    const refused = await cli(a, ['users'], { token: bob }).done;
    assert.equal(refused.code, 1);
    assert.match(refused.err, /^nondivy: \S/m);

    // reset by an admin
    await run(a, ['users', 'reset', 'bob'], { stdin: 'bob-password-3\n' });
    await login(a.api, 'bob', 'bob-password-3');

    // delete: needs --yes without a terminal
    const unconfirmed = await cli(a, ['users', 'delete', 'bob']).done;
    assert.equal(unconfirmed.code, 2);
    assert.match(unconfirmed.err, /needs --yes/);
    await run(a, ['users', 'delete', 'bob', '--yes']);
    assert.doesNotMatch(await run(a, ['users']), /^bob\s/m);
    const gone = await cli(a, ['users', 'delete', 'bob', '--yes']).done;
    assert.equal(gone.code, 1);
    assert.match(gone.err, /^nondivy: \S/m);
    // the last admin stays
    const last = await cli(a, ['users', 'role', 'admin', 'member']).done;
    assert.equal(last.code, 1);
    assert.match(last.err, /^nondivy: .*admin/m);
  });
});
