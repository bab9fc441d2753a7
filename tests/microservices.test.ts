/**
 * The four services as separate processes, wired the way docker-compose.yml wires them: each runs
 * its own entry point (dist/gateway.mjs, dist/catalog.mjs, dist/ftp.mjs, dist/discovery.mjs, not
 * the standalone), shares only Redis and the S3 server, and finds the others through URLs in its
 * environment. They start in a scrambled order — before Redis, before the S3 server, the gateway
 * before the catalog — and must wait rather than crash; then the end-to-end flow goes through them
 * (REST and FTP over one library, search by the catalog process, device presence swept by the
 * discovery process), every service and both stores are restarted, and nothing is lost. The
 * container health check (infra/healthcheck.mjs) is run against each service too.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ftpClient } from './helpers/ftp.js';
import { bearer, login, readEvents, upload } from './helpers/http.js';
import { freePort, freePortRange, startRedis, startS3, tempDir, type TestRedis, type TestS3 } from './helpers/infra.js';
import type { LogLine } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN = 'admin-password';
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

type ServiceName = 'gateway' | 'catalog' | 'ftp' | 'discovery';

/** The line each service logs once it listens. */
const LISTENING: Record<ServiceName, string> = {
  gateway: 'gateway listening',
  catalog: 'catalog listening',
  ftp: 'FTP listening',
  discovery: 'discovery listening',
};

/** One service as its own process, with its JSON log lines collected. */
class ServiceProcess {
  readonly logs: LogLine[] = [];
  private raw = '';
  private child: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly name: ServiceName,
    readonly env: Record<string, string>,
  ) {}

  start(): void {
    assert.equal(this.child, null, `${this.name} is already running`);
    this.logs.length = 0;
    const child = spawn(process.execPath, ['--enable-source-maps', `dist/${this.name}.mjs`], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    child.stdout!.on('data', (d: Buffer) => {
      this.raw += d;
      buffer += d;
      let i: number;
      while ((i = buffer.indexOf('\n')) >= 0) {
        try {
          this.logs.push(JSON.parse(buffer.slice(0, i)) as LogLine);
        } catch {
          /* not JSON: kept in raw */
        }
        buffer = buffer.slice(i + 1);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.raw += d));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    this.child = child;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for a log line whose msg matches; fails at once if the process ends first. */
  async logged(msg: string | RegExp, ms = 20_000): Promise<LogLine> {
    const matches = (l: LogLine) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg));
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const line = this.logs.find(matches);
      if (line) return line;
      if (!this.running) assert.fail(`${this.name} exited (${this.child?.exitCode}) before logging "${msg}":\n${this.raw}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`${this.name} did not log "${msg}" within ${ms} ms:\n${this.raw}`);
  }

  /** SIGTERM (what `docker compose stop` sends through tini) and the exit status. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    if (this.running) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await this.exited;
    clearTimeout(timer);
    this.child = null;
    return code;
  }

  output(): string {
    return this.raw;
  }
}

async function within<T>(ms: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`condition not met within ${ms} ms`);
}

/** Collects an FTP download into memory. */
async function ftpDownload(port: number, path: string): Promise<Buffer> {
  const client = await ftpClient(port);
  const chunks: Buffer[] = [];
  try {
    await client.downloadTo(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      }),
      path,
    );
  } finally {
    client.close();
  }
  return Buffer.concat(chunks);
}

describe('the services as separate processes (the Docker Compose wiring)', () => {
  let redis: TestRedis;
  let s3: TestS3;
  let data: { path: string; cleanup(): void };
  let services: Record<ServiceName, ServiceProcess>;
  let api: string;
  let ports: { gateway: number; catalog: number; discovery: number; ftp: number; pasv: string };
  let token: string;
  const restUpload = { bytes: randomBytes(300_000 + 7), id: '' };
  const ftpUpload = { bytes: randomBytes(200_000 + 3), id: '' };

  /**
   * The container health check of a service, run with the service's own environment. Asynchronously:
   * the S3 server may live in this process and must keep answering meanwhile.
   */
  const healthcheck = (name: ServiceName): Promise<{ status: number | null; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['infra/healthcheck.mjs', name], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...services[name].env }, timeout: 15_000 });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.stdout.resume();
      child.once('close', (status) => resolve({ status, stderr }));
    });

  before(async () => {
    [redis, s3] = await Promise.all([startRedis(), startS3()]);
    data = tempDir();
    ports = { gateway: await freePort(), catalog: await freePort(), discovery: await freePort(), ftp: await freePort(), pasv: await freePortRange(8) };
    api = `http://127.0.0.1:${ports.gateway}/api/v1`;
    // What docker-compose.yml sets, with loopback addresses and free ports instead of service names.
    const common = { REDIS_URL: redis.url, NONDIVY_DATA_DIR: data.path };
    const blobs = { NONDIVY_BLOB_DRIVER: 's3', S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: s3.bucket };
    services = {
      gateway: new ServiceProcess('gateway', {
        ...common,
        ...blobs,
        NONDIVY_HTTP_HOST: '127.0.0.1',
        NONDIVY_HTTP_PORT: String(ports.gateway),
        NONDIVY_CATALOG_URL: `http://127.0.0.1:${ports.catalog}`,
        NONDIVY_ADMIN_PASSWORD: ADMIN,
        NONDIVY_PRESENCE_TTL_SECONDS: '2',
      }),
      catalog: new ServiceProcess('catalog', { ...common, ...blobs, NONDIVY_CATALOG_HOST: '127.0.0.1', NONDIVY_CATALOG_PORT: String(ports.catalog) }),
      ftp: new ServiceProcess('ftp', { ...common, ...blobs, NONDIVY_FTP_HOST: '127.0.0.1', NONDIVY_FTP_PORT: String(ports.ftp), NONDIVY_FTP_PASV_RANGE: ports.pasv }),
      // NONDIVY_ANNOUNCE stays off: no multicast from tests outside a test LAN.
      discovery: new ServiceProcess('discovery', {
        ...common,
        NONDIVY_DISCOVERY_HOST: '127.0.0.1',
        NONDIVY_DISCOVERY_PORT: String(ports.discovery),
        NONDIVY_PRESENCE_TTL_SECONDS: '2',
      }),
    };
  });

  after(async () => {
    for (const s of Object.values(services ?? {})) await s.stop();
    await Promise.all([redis?.close(), s3?.close()]);
    data?.cleanup();
  });

  it('start in any order, wait for Redis and the S3 server instead of crashing, and become ready', async () => {
    // Both stores down; the front doors and discovery start first.
    await Promise.all([redis.stop(), s3.stop()]);
    for (const name of ['gateway', 'ftp', 'discovery'] as const) services[name].start();
    for (const name of ['gateway', 'ftp', 'discovery'] as const) await services[name].logged('waiting for redis');
    assert.notEqual((await healthcheck('gateway')).status, 0, 'not healthy before it listens');

    await redis.start();
    await services.discovery.logged(LISTENING.discovery);
    await services.gateway.logged('waiting for the blob store');
    await services.ftp.logged('waiting for the blob store');
    assert.ok(services.gateway.running && services.ftp.running, 'still waiting, not crashed');

    await s3.start();
    await services.gateway.logged(LISTENING.gateway);
    await services.ftp.logged(LISTENING.ftp);

    // The catalog comes last: meanwhile the gateway answers searches with 503, and everything else.
    const early = await fetch(`${api}/library?q=anything`);
    assert.equal(early.status, 503);
    assert.equal(early.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.equal((await fetch(`http://127.0.0.1:${ports.gateway}/readyz`)).status, 200, 'the gateway does not need the catalog to be ready');
    services.catalog.start();
    await services.catalog.logged(LISTENING.catalog);

    for (const [name, port] of [['gateway', ports.gateway], ['catalog', ports.catalog], ['discovery', ports.discovery]] as const) {
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200, `${name} is ready`);
    }
    for (const name of ['gateway', 'catalog', 'ftp', 'discovery'] as const) {
      const res = await healthcheck(name);
      assert.equal(res.status, 0, `the container health check of ${name}: ${res.stderr}`);
    }
    assert.equal((await fetch(`${api}/library?q=anything`)).status, 200);
  });

  it('one library through them all: REST upload → catalog search → FTP download, FTP upload → REST download', async () => {
    token = await login(api, 'admin', ADMIN);
    const res = await upload(api, token, restUpload.bytes, 'Microservice Manual.pdf', { title: 'Microservice Manual' }, 'application/pdf');
    assert.equal(res.status, 201);
    restUpload.id = ((await res.json()) as { id: string }).id;

    const found = (await (await fetch(`${api}/library?q=microserv`)).json()) as { items: { id: string }[] };
    assert.deepEqual(found.items.map((i) => i.id), [restUpload.id], 'the catalog process finds it (prefix search)');
    assert.equal(sha(await ftpDownload(ports.ftp, '/library/document/Microservice Manual.pdf')), sha(restUpload.bytes));

    const client = await ftpClient(ports.ftp, 'admin', ADMIN);
    try {
      assert.equal((await client.uploadFrom(Readable.from([ftpUpload.bytes]), '/library/ebook/Distributed Systems.epub')).code, 226);
    } finally {
      client.close();
    }
    const viaCatalog = (await (await fetch(`${api}/library?q=distributed`)).json()) as { items: { id: string; sha256: string; filename: string }[] };
    const item = viaCatalog.items.find((i) => i.filename === 'Distributed Systems.epub');
    assert.ok(item, 'the FTP upload is found through the gateway and the catalog');
    assert.equal(item.sha256, sha(ftpUpload.bytes));
    ftpUpload.id = item.id;
    const content = await fetch(`${api}/library/${item.id}/content`);
    assert.equal(content.status, 200);
    assert.equal(sha(Buffer.from(await content.arrayBuffer())), sha(ftpUpload.bytes));
  });

  it('devices: registered and listed by the gateway, published offline by the discovery process', async () => {
    const stream = readEvents(`${api}/events`);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const res = await fetch(`${api}/devices`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'compose-laptop' }) });
      assert.equal(res.status, 201);
      const { device } = (await res.json()) as { device: { id: string } };
      const listed = (await (await fetch(`${api}/devices`, { headers: bearer(token) })).json()) as { devices: { id: string }[] };
      assert.ok(listed.devices.some((d) => d.id === device.id));
      // No heartbeat: two seconds later the discovery service's sweeper publishes it offline.
      await within(10_000, async () => stream.events.find((e) => e.event === 'device.offline' && e.data.id === device.id));
      assert.ok(services.discovery.logs.some((l) => l.msg === 'presence swept' && Number(l.devicesOffline) >= 1), 'swept by the discovery process');
      const after = (await (await fetch(`${api}/devices`, { headers: bearer(token) })).json()) as { devices: { id: string }[] };
      assert.ok(!after.devices.some((d) => d.id === device.id));
    } finally {
      await stream.close();
    }
  });

  it('restarting any service, Redis or the S3 server loses nothing', async () => {
    const check = async (what: string) => {
      // Every service reconnects by itself; the FTP service has no readiness endpoint, so a download tells.
      for (const port of [ports.gateway, ports.catalog, ports.discovery]) {
        await within(15_000, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
      }
      await within(15_000, async () => sha(await ftpDownload(ports.ftp, '/library/document/Microservice Manual.pdf')) === sha(restUpload.bytes));
      const fresh = await login(api, 'admin', ADMIN);
      const items = (await (await fetch(`${api}/library?limit=50`, { headers: bearer(fresh) })).json()) as { items: { id: string }[] };
      assert.deepEqual(new Set(items.items.map((i) => i.id)), new Set([restUpload.id, ftpUpload.id]), `after restarting ${what}`);
      const search = (await (await fetch(`${api}/library?q=manual`)).json()) as { items: { id: string }[] };
      assert.deepEqual(search.items.map((i) => i.id), [restUpload.id], `search after restarting ${what}`);
      const bytes = await fetch(`${api}/library/${ftpUpload.id}/content`);
      assert.equal(sha(Buffer.from(await bytes.arrayBuffer())), sha(ftpUpload.bytes), `content after restarting ${what}`);
    };

    for (const name of ['catalog', 'gateway', 'ftp', 'discovery'] as const) {
      assert.equal(await services[name].stop(), 0, `${name} stops cleanly on SIGTERM`);
      services[name].start();
      await services[name].logged(LISTENING[name]);
      await check(name);
    }
    await redis.stop();
    await redis.start();
    await check('redis');
    await s3.stop();
    await s3.start();
    await check('the S3 server');
    for (const name of ['gateway', 'catalog', 'ftp', 'discovery'] as const) {
      const res = await healthcheck(name);
      assert.equal(res.status, 0, `${name} is healthy at the end: ${res.stderr}`);
    }
  });
});
