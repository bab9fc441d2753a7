/**
 * LAN discovery, only ever inside network namespaces that this test creates (two hosts on a bridge
 * of their own): the server announces `_nondivy._tcp.local` from one host; from the other, the
 * `nondivy` CLI and an independent resolver (Debian's python3-zeroconf) find and resolve it, and the
 * announced API answers; Docker-like interfaces on the announcing host are left out. Skipped,
 * saying why, where namespaces cannot be created (not root). Also, without namespaces: the choice
 * of interfaces over tables of names, and the discovery service's own start (no warnings, loopback).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { announceAddress, chooseAnnounceInterfaces, type InterfaceTable } from '@nondivy/discovery';
import { startRedis, tempDir } from './helpers/infra.js';
import { listeningSockets } from './helpers/listening-sockets.js';
import { createLan, lanUnavailable, type TestLan } from './helpers/netns.js';
import { startServer, type TestServer } from './helpers/server.js';

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

  it('the announcement is withdrawn when the server stops', async () => {
    assert.equal(await server.stop(), 0);
    const res = spawnSync(lan.prefix(1)[0]!, [...lan.prefix(1).slice(1), process.execPath, CLI, 'discover', '--json', '--timeout', '2000'], { encoding: 'utf8', timeout: 30_000 });
    const servers = res.status === 0 ? (JSON.parse(res.stdout) as { servers: unknown[] }).servers : [];
    assert.equal(servers.length, 0, res.stdout + res.stderr);
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
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await redis.close();
    }
    assert.doesNotMatch(stderr, /FSTDEP|DeprecationWarning|Warning:/, stderr);
  });
});
