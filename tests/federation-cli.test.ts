/**
 * Federation from the `nondivy` CLI (child processes) between two complete sites: link, links,
 * search --all, devices --all, send FILE --to DEVICE@SITE through both gateways, unlink.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from './helpers/http.js';
import { tempDir } from './helpers/infra.js';
import { startSite, type Site } from './helpers/sites.js';

const CLI = 'clients/cli/bin/nondivy.mjs';
const shaFile = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('federation with the nondivy CLI', () => {
  let a: Site;
  let b: Site;
  let work: { path: string; cleanup(): void };
  const children: ReturnType<typeof spawn>[] = [];

  /** Runs the CLI against `site` as its admin; resolves with exit code and output. */
  const cli = (site: Site, args: string[], env: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: work.path, XDG_CONFIG_HOME: join(work.path, 'config'), NONDIVY_SERVER: site.url, NONDIVY_TOKEN: site.admin, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    const done = new Promise<{ code: number | null; out: string; err: string }>((r) => child.once('exit', (code) => r({ code, out, err })));
    return { child, done };
  };
  const run = async (site: Site, args: string[], env?: Record<string, string>) => {
    const res = await cli(site, args, env).done;
    assert.equal(res.code, 0, `nondivy ${args.join(' ')}: ${res.err}`);
    return res.out;
  };

  before(async () => {
    work = tempDir('nondivy-fedcli-');
    [a, b] = await Promise.all([startSite('Hilltop'), startSite('Riverside')]);
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await Promise.all([a?.close(), b?.close()]);
    work?.cleanup();
  });

  it('links two sites with `nondivy link` and lists the link on both', async () => {
    const invite = JSON.parse(await run(a, ['link', '--json'])) as { code: string };
    assert.match(invite.code, /^ndv1\./);
    const link = JSON.parse(await run(b, ['link', invite.code, '--json'])) as { siteId: string; name: string; state: string };
    assert.equal(link.siteId, a.siteId);
    assert.equal(link.state, 'online');
    const fromA = JSON.parse(await run(a, ['links', '--json'])) as { links: { siteId: string; name: string; state: string }[] };
    assert.deepEqual(fromA.links.map((l) => [l.siteId, l.name, l.state]), [[b.siteId, 'Riverside', 'online']]);
    assert.match(await run(a, ['links']), /Riverside\s+\S+\s+online/);
    const again = await cli(b, ['link', invite.code]).done;
    assert.notEqual(again.code, 0, 'an invite works once');
  });

  it('searches and lists devices across sites with --all', async () => {
    const res = await upload(b.api, b.admin, Buffer.from('a map of the river'), 'river-map.txt', { title: 'River Map' }, 'text/plain');
    assert.equal(res.status, 201);
    const found = JSON.parse(await run(a, ['search', 'river', '--all', '--json'])) as { items: { title: string; site?: string }[]; sites: { ok: boolean }[] };
    assert.deepEqual(found.items.map((i) => [i.title, i.site]), [['River Map', b.siteId]]);
    assert.deepEqual(found.sites.map((s) => s.ok), [true]);
    const local = JSON.parse(await run(a, ['search', 'river', '--json'])) as { items: unknown[] };
    assert.deepEqual(local.items, []);
  });

  it('sends a file to DEVICE@SITE: through both gateways, checked at the receiver', async () => {
    const dir = join(work.path, 'received');
    const src = join(work.path, 'across.bin');
    writeFileSync(src, randomBytes(4 * 1024 * 1024 + 9));
    const receiver = cli(b, ['receive', '--dir', dir, '--yes', '--once', '--json', '--listen', '127.0.0.1:0'], { NONDIVY_DEVICE: 'river-pc' });
    const t0 = Date.now();
    for (;;) {
      const list = JSON.parse(await run(a, ['devices', '--all', '--json'])) as { devices: { name: string; site?: string; owner: string }[] };
      const remote = list.devices.find((d) => d.name === 'river-pc');
      if (remote) {
        assert.equal(remote.site, b.siteId);
        assert.equal(remote.owner, '', 'a linked site does not see account names');
        break;
      }
      assert.ok(Date.now() - t0 < 10_000, 'the remote device shows up');
      await new Promise((r) => setTimeout(r, 200));
    }
    const sent = JSON.parse(await run(a, ['send', src, '--to', 'river-pc@Riverside', '--json'], { NONDIVY_DEVICE: 'hill-laptop' })) as { state: string; route: string };
    assert.equal(sent.state, 'completed');
    assert.equal(sent.route, 'relay');
    const received = await receiver.done;
    assert.equal(received.code, 0, received.err);
    assert.equal(shaFile(join(dir, 'across.bin')), shaFile(src));
  });

  it('unlinks with `nondivy unlink` on both sides', async () => {
    const res = JSON.parse(await run(a, ['unlink', 'Riverside', '--json'])) as { remote: string };
    assert.equal(res.remote, 'unlinked');
    assert.deepEqual((JSON.parse(await run(a, ['links', '--json'])) as { links: unknown[] }).links, []);
    assert.deepEqual((JSON.parse(await run(b, ['links', '--json'])) as { links: unknown[] }).links, []);
  });
});
