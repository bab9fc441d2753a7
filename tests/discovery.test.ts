/**
 * LAN discovery, only ever inside network namespaces that this test creates (two hosts on a bridge
 * of their own): the server announces `_nondivy._tcp.local` from one host; from the other, the
 * `nondivy` CLI and an independent resolver (Debian's python3-zeroconf) find and resolve it, and the
 * announced API answers. Skipped, saying why, where namespaces cannot be created (not root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { tempDir } from './helpers/infra.js';
import { createLan, lanUnavailable, type TestLan } from './helpers/netns.js';
import { startServer, type TestServer } from './helpers/server.js';

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
