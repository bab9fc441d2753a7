/**
 * LAN discovery, only ever inside network namespaces that this test creates (hosts on a bridge of
 * their own): the server announces the site from one host as `_nondivy._tcp` (Nondivy's clients),
 * `_http._tcp` (the web app) and `_ftp._tcp` (the library over FTP); from another, the `nondivy`
 * CLI and independent resolvers (Debian's avahi, as file managers and avahi-discover browse, and
 * python3-zeroconf) find and resolve them, and what they announce answers; Docker-like interfaces
 * on the announcing host are left out. Long and clashing site names stay valid DNS-SD names, and
 * a discovery service without an FTP port announces no `_ftp._tcp`. Skipped, saying why, where
 * namespaces cannot be created (not root) or avahi is not installed. Also, without namespaces: the
 * choice of interfaces and the fitting of instance names, and the discovery service's own start
 * (no warnings, loopback).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { announceAddress, chooseAnnounceInterfaces, instanceName, MAX_LABEL_BYTES, type InterfaceTable } from '@nondivy/discovery';
import { avahiUnavailable, hostAddresses, startAvahi, urlHost, type AvahiBrowser, type AvahiService } from './helpers/avahi.js';
import { startRedis, tempDir } from './helpers/infra.js';
import { listeningSockets } from './helpers/listening-sockets.js';
import { startDiscoveryIn, type NetnsDiscovery } from './helpers/netns-discovery.js';
import { createLan, lanUnavailable, type TestLan } from './helpers/netns.js';
import { startServer, type TestServer } from './helpers/server.js';
import { stopChild } from './helpers/stop-child.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const CLI = 'clients/cli/bin/nondivy.mjs';
const PYTHON = '/usr/bin/python3';

const RESOLVE_PY = `
import sys, time, json
from zeroconf import Zeroconf, ServiceBrowser, ServiceListener
found = []
class L(ServiceListener):
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info:
            found.append({'name': name, 'port': info.port, 'addresses': info.parsed_addresses(),
                          'txt': {k.decode(): (v.decode() if v is not None else '') for k, v in info.properties.items()}})
    def update_service(self, *a): pass
    def remove_service(self, *a): pass
zc = Zeroconf()
ServiceBrowser(zc, '_nondivy._tcp.local.', L())
deadline = time.time() + float(sys.argv[1])
while time.time() < deadline and not found:
    time.sleep(0.1)
zc.close()
print(json.dumps(found))
`;

const skip = lanUnavailable();
if (skip) console.log(`# discovery tests skipped: ${skip}`);
const noAvahi = skip ?? avahiUnavailable();
if (noAvahi && !skip) console.log(`# avahi tests skipped: ${noAvahi}`);

/** Browses the three types at once from a fresh avahi on `ns`, stopped afterwards. */
async function browseAll(ns: string, timeoutMs: number, done?: (type: string, found: AvahiService[]) => boolean) {
  const avahi: AvahiBrowser = await startAvahi(ns);
  try {
    const types = ['_nondivy._tcp', '_http._tcp', '_ftp._tcp'] as const;
    const found = await Promise.all(types.map((t) => avahi.browse(t, timeoutMs, done && ((f) => done(t, f)))));
    return Object.fromEntries(types.map((t, i) => [t, found[i]!])) as Record<(typeof types)[number], AvahiService[]>;
  } finally {
    await avahi.stop();
  }
}

describe('LAN discovery between two network namespaces', { skip: skip ?? false }, () => {
  let lan: TestLan;
  let server: TestServer;
  let data: { path: string; cleanup(): void };

  before(async () => {
    lan = createLan(2);
    // What Docker adds to a host: its bridge and the host side of a container's link (a veth
    // pair here, both ends up with addresses, so both are running interfaces with IPv4).
    const ns = lan.hosts[0]!.ns;
    for (const args of [
      ['link', 'add', 'docker0', 'type', 'veth', 'peer', 'name', 'veth1c2d3e4'],
      ['addr', 'add', '172.17.0.1/16', 'dev', 'docker0'],
      ['addr', 'add', '172.18.0.1/16', 'dev', 'veth1c2d3e4'],
      ['link', 'set', 'docker0', 'up'],
      ['link', 'set', 'veth1c2d3e4', 'up'],
    ]) {
      const r = spawnSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
    }
    data = tempDir();
    server = await startServer(
      {
        NONDIVY_DATA_DIR: data.path,
        NONDIVY_ADMIN_PASSWORD: 'admin-password',
        NONDIVY_HTTP_HOST: '0.0.0.0',
        NONDIVY_FTP_HOST: '0.0.0.0',
        NONDIVY_ANNOUNCE: '1',
        NONDIVY_SITE_NAME: 'Attic Library',
      },
      { prefix: lan.prefix(0), host: lan.hosts[0]!.ip, port: 8080 },
    );
  });

  after(async () => {
    await server?.stop();
    lan?.cleanup();
    data?.cleanup();
  });

  it('`nondivy discover` on another host finds the server with its TXT record, and its API answers there', async () => {
    const res = spawnSync(lan.prefix(1)[0]!, [...lan.prefix(1).slice(1), process.execPath, CLI, 'discover', '--json', '--timeout', '4000'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(res.status, 0, res.stderr);
    const { servers } = JSON.parse(res.stdout) as { servers: { name: string; siteId: string; api: string; ftpPort: number; version: string }[] };
    assert.equal(servers.length, 1, res.stdout);
    const found = servers[0]!;
    assert.match(found.name, /Attic Library/);
    assert.match(found.siteId, /^[A-Za-z0-9_-]{12}$/);
    assert.equal(found.api, `http://${lan.hosts[0]!.ip}:8080`);
    assert.equal(found.ftpPort, server.ftpPort);
    assert.equal(found.version, '0.1.0');
    const api = spawnSync(lan.prefix(1)[0]!, [...lan.prefix(1).slice(1), 'curl', '-sS', '--max-time', '5', `${found.api}/healthz`], { encoding: 'utf8' });
    assert.equal(api.status, 0, api.stderr);
    assert.deepEqual(JSON.parse(api.stdout), { status: 'ok' });
  });

  it('announces on the LAN interface only, not on Docker\'s bridge or veths', () => {
    const line = server.logs.find((l) => l.msg === 'announcing the site on the LAN');
    assert.ok(line, server.rawOutput());
    assert.deepEqual(line.interfaces, ['eth0']);
    assert.equal(line.api, `http://${lan.hosts[0]!.ip}:8080`);
  });

  it('an independent resolver (python-zeroconf) resolves the announcement: SRV port, address and TXT', { skip: existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import zeroconf']).status === 0 ? false : 'python3-zeroconf is not installed' }, () => {
    const res = spawnSync(lan.prefix(1)[0]!, [...lan.prefix(1).slice(1), PYTHON, '-c', RESOLVE_PY, '6'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(res.status, 0, res.stderr);
    const found = JSON.parse(res.stdout) as { name: string; port: number; addresses: string[]; txt: Record<string, string> }[];
    assert.equal(found.length, 1, res.stdout);
    assert.equal(found[0]!.port, 8080);
    assert.ok(found[0]!.addresses.includes(lan.hosts[0]!.ip), JSON.stringify(found[0]!.addresses));
    assert.equal(found[0]!.txt.name, 'Attic Library');
    assert.equal(found[0]!.txt.api, `http://${lan.hosts[0]!.ip}:8080`);
    assert.equal(found[0]!.txt.ftp, String(server.ftpPort));
  });

  it('avahi on another host lists the site as `_http._tcp` and `_ftp._tcp` by its name, and `_nondivy._tcp` as before; what they announce answers', { skip: noAvahi ?? false }, async () => {
    const host = lan.hosts[0]!.ip;
    // The address a resolver picks for `_nondivy._tcp` (its clients use the TXT's api): the host's IPv4 or its IPv6 link-local.
    const addresses = hostAddresses(lan.hosts[0]!.ns);
    const found = await browseAll(lan.hosts[1]!.ns, 8000, (type, f) => f.length > 0);
    const only = (type: keyof typeof found) => {
      assert.equal(found[type].length, 1, `${type}: ${JSON.stringify(found[type])}`);
      return found[type][0]!;
    };
    const http = only('_http._tcp');
    // IPv4 only: the server listens on 0.0.0.0, not on the IPv6 link-local address.
    assert.deepEqual([http.name, http.address, http.port, http.txt], ['Attic Library', host, 8080, { path: '/' }]);
    const ftp = only('_ftp._tcp');
    assert.deepEqual([ftp.name, ftp.address, ftp.port, ftp.txt], ['Attic Library (FTP)', host, server.ftpPort, { path: '/library' }]);
    // Nondivy's own record, name and TXT exactly as its clients read them.
    const own = only('_nondivy._tcp');
    assert.deepEqual([own.name, own.port], ['Attic Library', 8080]);
    assert.ok(addresses.includes(own.address), `${own.address} is not one of ${addresses.join(', ')}`);
    assert.match(own.txt.siteId!, /^[A-Za-z0-9_-]{12}$/);
    assert.deepEqual(own.txt, { siteId: own.txt.siteId, name: 'Attic Library', ftp: String(server.ftpPort), version: '0.1.0', path: '/api/v1', api: `http://${host}:8080` });
    // What a browser or a file manager reaches from these records: the gateway, and the library over FTP.
    const run = (...argv: string[]) => spawnSync(lan.prefix(1)[0]!, [...lan.prefix(1).slice(1), ...argv], { encoding: 'utf8', timeout: 15_000 });
    const health = run('curl', '-sS', '--max-time', '5', `http://${urlHost(http)}:${http.port}/healthz`);
    assert.equal(health.status, 0, health.stderr);
    assert.deepEqual(JSON.parse(health.stdout), { status: 'ok' });
    const listing = run('curl', '-sS', '--max-time', '5', '--list-only', `ftp://${urlHost(ftp)}:${ftp.port}${ftp.txt.path}/`);
    assert.equal(listing.status, 0, listing.stderr);
    assert.match(listing.stdout, /\S/, 'the FTP path lists the library\'s folders');
  });

  it('the announcement is withdrawn when the server stops', async () => {
    assert.equal(await server.stop(), 0);
    const res = spawnSync(lan.prefix(1)[0]!, [...lan.prefix(1).slice(1), process.execPath, CLI, 'discover', '--json', '--timeout', '2000'], { encoding: 'utf8', timeout: 30_000 });
    const servers = res.status === 0 ? (JSON.parse(res.stdout) as { servers: unknown[] }).servers : [];
    assert.equal(servers.length, 0, res.stdout + res.stderr);
    if (noAvahi) return;
    const found = await browseAll(lan.hosts[1]!.ns, 2500);
    assert.deepEqual(found, { '_nondivy._tcp': [], '_http._tcp': [], '_ftp._tcp': [] });
  });
});

const LONG_NAME = 'Médiathèque St. Rémy-de-Provence — fonds ancien, cartes et partitions 📚';

describe('a long site name, held by two sites on one LAN; a discovery service without FTP', { skip: noAvahi ?? false }, () => {
  let lan: TestLan;
  const sites: NetnsDiscovery[] = [];

  before(async () => {
    lan = createLan(3);
    // The discovery service alone, as in Compose: one with the FTP port, the other with none (0).
    sites.push(await startDiscoveryIn(lan.hosts[0]!.ns, { NONDIVY_SITE_NAME: LONG_NAME, NONDIVY_HTTP_PORT: '8080', NONDIVY_FTP_PORT: '2121' }));
    sites.push(await startDiscoveryIn(lan.hosts[1]!.ns, { NONDIVY_SITE_NAME: LONG_NAME, NONDIVY_HTTP_PORT: '8080', NONDIVY_FTP_PORT: '0' }));
  });

  after(async () => {
    for (const site of sites) await site.stop();
    lan?.cleanup();
  });

  it('names fit one DNS label (63 bytes) even once the second site is renamed "(2)"; no `_ftp._tcp` without an FTP port', async () => {
    for (const site of sites) assert.ok(site.logs.some((l) => l.msg === 'announcing the site on the LAN'), site.rawOutput());
    const found = await browseAll(lan.hosts[2]!.ns, 3000, (type, f) => type !== '_ftp._tcp' && f.length >= 2);
    const hostOf = (s: AvahiService) => [0, 1].find((i) => hostAddresses(lan.hosts[i]!.ns).includes(s.address));
    const [first, second] = [0, 1];
    const name = 'Médiathèque St Rémy-de-Provence — fonds ancien, carte';
    const byName = (list: AvahiService[]) => [...list].sort((a, b) => a.name.localeCompare(b.name)).map((s) => [s.name, hostOf(s), s.port]);
    assert.deepEqual(byName(found['_http._tcp']), [[name, first, 8080], [`${name} (2)`, second, 8080]]);
    assert.deepEqual(byName(found['_nondivy._tcp']), [[name, first, 8080], [`${name} (2)`, second, 8080]]);
    for (const s of [...found['_http._tcp'], ...found['_nondivy._tcp']]) assert.ok(Buffer.byteLength(s.name) <= MAX_LABEL_BYTES, s.name);
    // The TXT keeps the whole name for Nondivy's clients.
    assert.deepEqual(found['_nondivy._tcp'].map((s) => s.txt.name), [LONG_NAME, LONG_NAME]);
    assert.deepEqual(found['_ftp._tcp'].map((s) => [s.name, hostOf(s), s.port, s.txt]), [['Médiathèque St Rémy-de-Provence — fonds ancien, (FTP)', first, 2121, { path: '/library' }]]);
    assert.ok(sites[1]!.logs.some((l) => l.msg === 'the LAN already has a service of this name; announced under another'), sites[1]!.rawOutput());
  });
});

describe('instance names (DNS-SD labels) from the site name', () => {
  it('a short name is kept as it is, the FTP one with " (FTP)"', () => {
    assert.equal(instanceName('Attic Library'), 'Attic Library');
    assert.equal(instanceName('Attic Library', ' (FTP)'), 'Attic Library (FTP)');
  });

  it('cut at 58 bytes (63 less room for " (99)"), at a whole character, the suffix kept whole', () => {
    const emoji = '👩‍👩‍👧‍👦'; // 25 bytes, one character of seven code points
    assert.equal(instanceName(`${'a'.repeat(40)} ${emoji}`), 'a'.repeat(40), 'the emoji does not fit whole: left out, not split');
    assert.equal(instanceName('é'.repeat(40)), 'é'.repeat(29));
    assert.equal(instanceName('x'.repeat(100), ' (FTP)'), `${'x'.repeat(52)} (FTP)`);
    for (const n of [LONG_NAME, 'é'.repeat(100), emoji.repeat(10)]) {
      for (const suffix of ['', ' (FTP)']) assert.ok(Buffer.byteLength(`${instanceName(n, suffix)} (99)`) <= MAX_LABEL_BYTES, n);
    }
  });

  it('dots (which would split the label) and control characters become single spaces; an empty result is "Nondivy"', () => {
    assert.equal(instanceName('St. Mary\'s\tLibrary\u0000 '), 'St Mary\'s Library');
    assert.equal(instanceName(' ... '), 'Nondivy');
    assert.equal(instanceName('..', ' (FTP)'), 'Nondivy (FTP)');
  });
});

describe('the interfaces the site is announced on', () => {
  const v4 = (address: string, internal = false) => ({ address, family: 'IPv4', internal });
  const v6 = (address: string) => ({ address, family: 'IPv6', internal: false });
  const host: InterfaceTable = {
    lo: [v4('127.0.0.1', true), { address: '::1', family: 'IPv6', internal: true }],
    docker0: [v4('172.17.0.1'), v6('fe80::42:1')],
    enp3s0: [v4('192.168.1.20'), v6('fe80::1')],
    'br-3f2a9c1d4e5b': [v4('172.18.0.1')],
    veth7a1b2c3: [v6('fe80::2')],
    wlan0: [v4('192.168.1.21')],
    virbr0: [v4('192.168.122.1')],
    'cni0': [v4('10.88.0.1')],
    'flannel.1': [v4('10.244.0.0')],
    tun0: [v4('10.8.0.2')],
    tap0: [v4('10.9.0.2')],
    wg0: [v4('10.10.0.1')],
    tailscale0: [v4('100.64.0.1')],
    ztabcdef12: [v4('10.147.17.1')],
    lxdbr0: [v4('10.1.1.1')],
    vboxnet0: [v4('192.168.56.1')],
    'br-lan': [v4('192.168.2.1')],
    br0: [v4('192.168.3.1')],
    eth1: [],
  };

  it('by default: the interfaces with a non-internal address, virtual ones left out', () => {
    assert.deepEqual(chooseAnnounceInterfaces(host), { interfaces: ['enp3s0', 'wlan0', 'br-lan', 'br0'], missing: [] });
    // The default API URL takes the chosen interfaces' first IPv4, not docker0's (listed first).
    assert.equal(announceAddress(host, chooseAnnounceInterfaces(host).interfaces), '192.168.1.20');
  });

  it('a container or a test LAN whose LAN is eth0 (a veth end, by its name a LAN interface) announces there', () => {
    const container: InterfaceTable = { lo: [v4('127.0.0.1', true)], eth0: [v4('10.100.1.1'), v6('fe80::3')] };
    assert.deepEqual(chooseAnnounceInterfaces(container).interfaces, ['eth0']);
    assert.equal(announceAddress(container, ['eth0']), '10.100.1.1');
    assert.deepEqual(chooseAnnounceInterfaces({ lo: [v4('127.0.0.1', true)], docker0: [v4('172.17.0.1')] }).interfaces, [], 'nothing to announce on: no fallback to every interface');
  });

  it('NONDIVY_ANNOUNCE_INTERFACES chooses explicitly, virtual names included; absent ones are reported and kept for later', () => {
    assert.deepEqual(chooseAnnounceInterfaces(host, ['wg0', 'enp3s0', 'wg0']), { interfaces: ['wg0', 'enp3s0'], missing: [] });
    assert.deepEqual(chooseAnnounceInterfaces(host, ['wlan1', 'enp3s0']), { interfaces: ['wlan1', 'enp3s0'], missing: ['wlan1'] });
    assert.equal(announceAddress(host, ['wlan1', 'wg0']), '10.10.0.1');
    assert.deepEqual(chooseAnnounceInterfaces(host, []).interfaces, chooseAnnounceInterfaces(host).interfaces, 'an empty list is the default');
  });
});

describe('the discovery service process', () => {
  it('starts without deprecation warnings, its HTTP port on loopback by default', async () => {
    const redis = await startRedis();
    const child = spawn(process.execPath, ['dist/discovery.mjs'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, REDIS_URL: redis.url, NONDIVY_DISCOVERY_PORT: '0', NONDIVY_ANNOUNCE: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not listening within 20 s:\n${stdout}${stderr}`)), 20_000);
        child.stdout!.on('data', (d: Buffer) => {
          stdout += d;
          if (/"discovery listening"/.test(stdout)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${stdout}${stderr}`)));
      });
      const sockets = listeningSockets(child.pid!);
      assert.equal(sockets.length, 1, JSON.stringify(sockets));
      assert.equal(sockets[0]!.address, '127.0.0.1');
      // Warnings are printed on a later tick than the one that raised them.
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await stopChild(child);
      await redis.close();
    }
    assert.doesNotMatch(stderr, /FSTDEP|DeprecationWarning|Warning:/, stderr);
  });
});
