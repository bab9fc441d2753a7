/**
 * The Docker Compose deployment, checked without a container engine: docker-compose.yml parses and
 * satisfies the Compose Specification (its JSON schema, vendored as infra/compose-spec.json from the
 * compose-spec project's schema/compose-spec.json, Apache-2.0), every service has a health check and
 * waits for healthy dependencies, the wiring between services agrees (service names, ports, the
 * published ports discovery announces), every variable a service reads is set by the compose file
 * and documented with its true default in .env.example, the build context and Dockerfile exist and
 * the Dockerfile's stages only use files that exist and reach the builder, and the README's
 * deployment section matches. When a `docker compose` CLI is installed, `docker compose config`
 * checks the file too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { loadCatalogConfig, loadDiscoveryConfig, loadFtpConfig, loadGatewayConfig } from '@nondivy/config';
import { DEFAULT_MINIO_IMAGE, DEFAULT_REDIS_IMAGE } from './helpers/containers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const deploymentSection = () => /^## Deployment \(Docker Compose\)\n([\s\S]*?)(?=^## )/m.exec(read('README.md'))?.[1] ?? '';

type Env = Record<string, string | undefined>;

// ---- Compose variable interpolation (the Compose Specification's rules, nesting included) -------

interface Reference {
  name: string;
  /** undefined for `${NAME}` / `$NAME`; otherwise one of `:-`, `-`, `:?`, `?`, `:+`, `+`. */
  op?: string;
  arg: string;
}

/** Expands `${…}` and `$NAME` in `text`; records every reference and every missing required variable. */
function interpolate(text: string, env: Env, refs: Reference[] = [], missing: string[] = []): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text[i] !== '$') {
      out += text[i++];
      continue;
    }
    if (text[i + 1] === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (text[i + 1] === '{') {
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}') depth--;
      }
      assert.equal(depth, 0, `unclosed \${ in ${text}`);
      const body = text.slice(i + 2, j - 1);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
      assert.ok(m, `not a Compose interpolation: \${${body}}`);
      const [, name, op, arg = ''] = m as unknown as [string, string, string | undefined, string | undefined];
      refs.push({ name, op, arg });
      const value = env[name];
      const set = value !== undefined;
      const nonEmpty = set && value !== '';
      const nested = () => interpolate(arg, env, refs, missing);
      if (op === undefined) out += value ?? '';
      else if (op === ':-') out += nonEmpty ? value : nested();
      else if (op === '-') out += set ? value : nested();
      else if (op === ':?' || op === '?') {
        if (op === ':?' ? !nonEmpty : !set) missing.push(name);
        out += value ?? '';
      } else if (op === ':+') out += nonEmpty ? nested() : '';
      else out += set ? nested() : '';
      i = j;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (m) {
      refs.push({ name: m[0], arg: '' });
      out += env[m[0]] ?? '';
      i += 1 + m[0].length;
    } else out += text[i++];
  }
  return out;
}

/** Interpolates every string of a parsed YAML document. */
function interpolateDeep(value: unknown, env: Env, refs: Reference[], missing: string[]): unknown {
  if (typeof value === 'string') return interpolate(value, env, refs, missing);
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, env, refs, missing));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, env, refs, missing)]));
  return value;
}

// ---- The files under test ------------------------------------------------------------------------

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[];
  environment?: Record<string, string | number | null>;
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  depends_on?: Record<string, { condition: string }> | string[];
  restart?: string;
  network_mode?: string;
}
interface ComposeFile {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const composeText = read('docker-compose.yml');
const rawCompose = parseYaml(composeText, { merge: true }) as ComposeFile;

/** .env.example: settings (`NAME=value`) and documented defaults (`# NAME=value`), with their line numbers. */
const envExampleLines = read('.env.example').split('\n');
const SETTING = /^([A-Z][A-Z0-9_]*)=(.*)$/;
const DOCUMENTED_DEFAULT = /^# ([A-Z][A-Z0-9_]*)=(\S*)$/;
const settings = new Map<string, { value: string; line: number }>();
const documentedDefaults = new Map<string, { value: string; line: number }>();
envExampleLines.forEach((line, i) => {
  const s = SETTING.exec(line);
  if (s) settings.set(s[1]!, { value: s[2]!, line: i });
  const d = DOCUMENTED_DEFAULT.exec(line);
  if (d) documentedDefaults.set(d[1]!, { value: d[2]!, line: i });
});

/** Values for the settings .env.example leaves to the operator. */
const OPERATOR_VALUES = { REDIS_PASSWORD: 'redisPassword0123', MINIO_ROOT_PASSWORD: 'minioPassword0123', NONDIVY_FTP_PASV_ADDRESS: '192.0.2.10' };
const filledEnv = (): Env => ({ ...Object.fromEntries([...settings].map(([k, v]) => [k, v.value])), ...OPERATOR_VALUES });

function render(env: Env) {
  const refs: Reference[] = [];
  const missing: string[] = [];
  const compose = interpolateDeep(rawCompose, env, refs, missing) as ComposeFile;
  return { compose, refs, missing };
}
const deployed = render(filledEnv()).compose;

/** The compose file's default passive range (`${NONDIVY_FTP_PASV_RANGE:-…}`), the same at every use. */
function pasvRangeDefault(): string {
  const defaults = new Set(render({}).refs.filter((r) => r.name === 'NONDIVY_FTP_PASV_RANGE' && r.op === ':-').map((r) => r.arg));
  assert.equal(defaults.size, 1, `one default for NONDIVY_FTP_PASV_RANGE: ${[...defaults].join(', ')}`);
  return [...defaults][0]!;
}

const NONDIVY_SERVICES = ['gateway', 'catalog', 'ftp', 'discovery'] as const;
type NondivyService = (typeof NONDIVY_SERVICES)[number];
const LOADERS: Record<NondivyService, (env: NodeJS.ProcessEnv) => unknown> = {
  gateway: loadGatewayConfig,
  catalog: loadCatalogConfig,
  ftp: loadFtpConfig,
  discovery: loadDiscoveryConfig,
};

/** Runs a loader on `env` and records which variables it reads (the `*_FILE` forms aside). */
function load(service: NondivyService, env: Env) {
  const names = new Set<string>();
  const proxy = new Proxy({ ...env }, {
    get(target, key) {
      if (typeof key === 'string') names.add(key);
      return target[key as string];
    },
  });
  try {
    return { config: LOADERS[service](proxy as NodeJS.ProcessEnv), reads: [...names].filter((n) => !n.endsWith('_FILE')) };
  } catch (err) {
    assert.fail(`${service} refuses the compose environment: ${(err as Error).message}`);
  }
}

const serviceEnv = (compose: ComposeFile, name: string): Env =>
  Object.fromEntries(Object.entries(compose.services[name]?.environment ?? {}).map(([k, v]) => [k, v === null ? undefined : String(v)]));

/** "HOST_IP:HOST:CONTAINER" / "HOST:CONTAINER" → its parts. */
function published(spec: string) {
  const parts = spec.split(':');
  const container = parts.pop()!;
  const host = parts.pop()!;
  return { ip: parts[0], host, container };
}

// ---- .dockerignore and Dockerfile -----------------------------------------------------------------

/** Docker's .dockerignore rules: glob patterns (with `**`), `!` exceptions, the last match wins, a matched folder excludes its content. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negated = l.startsWith('!');
      const pattern = (negated ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      const source = pattern
        .split(/(\*\*\/|\*\*|\*|\?)/)
        .map((t) => (t === '**/' ? '(?:.*/)?' : t === '**' ? '.*' : t === '*' ? '[^/]*' : t === '?' ? '[^/]' : t.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('');
      return { negated, re: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const prefixes = path.split('/').map((_, i, all) => all.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) excluded = !rule.negated;
    return excluded;
  };
}

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions (continuation lines joined, comments dropped), each with its stage index. */
function dockerfile(text: string): { instructions: Instruction[]; stages: { name?: string; from: string }[]; args: Record<string, string> } {
  const logical = text.replace(/\\\n(\s*#.*\n)*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: { name?: string; from: string }[] = [];
  const args: Record<string, string> = {};
  const instructions: Instruction[] = [];
  for (const line of logical) {
    const [, keyword, rest] = /^(\w+)\s+([\s\S]*)$/.exec(line)!;
    const kw = keyword!.toUpperCase();
    if (kw === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest!.split('=');
      args[k!.trim()] = v.trim();
    }
    if (kw === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest!.trim())!;
      stages.push({ from: m[1]!, name: m[2] });
    }
    instructions.push({ keyword: kw, args: rest!, stage: stages.length - 1 });
  }
  return { instructions, stages, args };
}

const ignored = dockerignore(read('.dockerignore'));
const docker = dockerfile(read('infra/Dockerfile'));
const workspaces = (JSON.parse(read('package.json')) as { workspaces: string[] }).workspaces;
const workspaceDirs = workspaces.flatMap((pattern) => {
  const base = pattern.replace(/\/\*$/, '');
  return readdirSync(join(ROOT, base))
    .map((d) => `${base}/${d}`)
    .filter((d) => existsSync(join(ROOT, d, 'package.json')));
});

/** The `docker compose` CLI, when one is installed. */
function composeCli(): string[] | null {
  for (const argv of [['docker', 'compose'], ['docker-compose']]) {
    const res = spawnSync(argv[0]!, [...argv.slice(1), 'version'], { encoding: 'utf8' });
    if (res.status === 0 && /v?2\.|version 2/i.test(res.stdout)) return argv;
  }
  return null;
}

// ---- The checks ---------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('satisfies the Compose Specification (JSON schema), before and after interpolation', () => {
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
    const validate = ajv.compile(JSON.parse(read('infra/compose-spec.json')) as object);
    for (const [what, doc] of [['as written', rawCompose], ['with .env.example filled in', deployed]] as const) {
      const ok = validate(doc);
      assert.ok(ok, `${what}: ${ajv.errorsText(validate.errors, { separator: '\n' })}`);
    }
    assert.deepEqual(Object.keys(rawCompose.services).sort(), ['catalog', 'discovery', 'ftp', 'gateway', 'minio', 'redis']);
  });

  it('refuses to start until the operator sets the passwords and the PASV address, and names them', () => {
    const { missing } = render(Object.fromEntries([...settings].map(([k, v]) => [k, v.value])));
    assert.deepEqual(new Set(missing), new Set(['REDIS_PASSWORD', 'MINIO_ROOT_PASSWORD', 'NONDIVY_FTP_PASV_ADDRESS']));
    assert.deepEqual(render(filledEnv()).missing, []);
  });

  it('every service has a health check, restarts unless stopped, and waits for healthy dependencies (no cycle)', () => {
    const services = deployed.services;
    for (const [name, s] of Object.entries(services)) {
      const test = s.healthcheck?.test;
      assert.ok(test && test.length > 0 && test[0] !== 'NONE' && !s.healthcheck?.disable, `${name} has a health check`);
      assert.equal(s.restart, 'unless-stopped', `${name} restarts unless stopped`);
      const deps = s.depends_on ?? {};
      assert.ok(!Array.isArray(deps), `${name}: depends_on with conditions`);
      for (const [dep, cond] of Object.entries(deps)) {
        assert.ok(services[dep], `${name} depends on ${dep}, which exists`);
        assert.equal(cond.condition, 'service_healthy', `${name} waits for ${dep} to be healthy`);
      }
    }
    for (const name of NONDIVY_SERVICES) {
      assert.deepEqual(services[name]!.healthcheck!.test, ['CMD', 'node', 'infra/healthcheck.mjs', name]);
      assert.ok(Object.keys(services[name]!.depends_on ?? {}).includes('redis'), `${name} starts after Redis`);
    }
    assert.ok(existsSync(join(ROOT, 'infra/healthcheck.mjs')));
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (n: string) => {
      assert.ok(!visiting.has(n), `dependency cycle through ${n}`);
      if (done.has(n)) return;
      visiting.add(n);
      for (const d of Object.keys(services[n]?.depends_on ?? {})) visit(d);
      visiting.delete(n);
      done.add(n);
    };
    Object.keys(services).forEach(visit);
  });

  it('Redis: official image, AOF on, a password, a named volume, reachable from the host loopback only', () => {
    const redis = deployed.services.redis!;
    assert.match(redis.image!, /^redis:/);
    const command = redis.command!.join(' ');
    assert.match(command, /--appendonly yes/);
    assert.match(command, new RegExp(`--requirepass ${OPERATOR_VALUES.REDIS_PASSWORD}`));
    assert.ok(redis.volumes!.includes('redis-data:/data'));
    assert.ok(deployed.volumes && 'redis-data' in deployed.volumes, 'a named volume');
    for (const p of redis.ports ?? []) assert.equal(published(p).ip, '127.0.0.1', `${p}: loopback only`);
  });

  it('MinIO: official image, a named volume, credentials from the environment, console not published', () => {
    const minio = deployed.services.minio!;
    assert.match(minio.image!, /^minio\/minio[:@]/);
    assert.ok(minio.volumes!.includes('minio-data:/data'));
    assert.ok(deployed.volumes && 'minio-data' in deployed.volumes);
    const env = rawCompose.services.minio!.environment!;
    assert.match(String(env.MINIO_ROOT_USER), /^\$\{MINIO_ROOT_USER[:}]/);
    assert.match(String(env.MINIO_ROOT_PASSWORD), /^\$\{MINIO_ROOT_PASSWORD:\?/);
    assert.equal(minio.ports, undefined, 'nothing published');
    // The images the container test infrastructure runs are the ones deployed.
    const defaults = render({}).refs;
    const imageDefault = (name: string) => defaults.find((r) => r.name === name && r.op === ':-')?.arg;
    assert.equal(imageDefault('REDIS_IMAGE'), DEFAULT_REDIS_IMAGE);
    assert.equal(imageDefault('MINIO_IMAGE'), DEFAULT_MINIO_IMAGE);
  });

  it('the four services are built from this repository: one image, the context and Dockerfile exist, each runs its own bundle', () => {
    const buildScript = read('infra/build.mjs');
    const images = new Set<string>();
    for (const name of NONDIVY_SERVICES) {
      const s = deployed.services[name]!;
      const build = typeof s.build === 'string' ? { context: s.build } : s.build!;
      assert.ok(statSync(join(ROOT, build.context)).isDirectory(), `${name}: build context ${build.context}`);
      assert.ok(existsSync(join(ROOT, build.context, build.dockerfile ?? 'Dockerfile')), `${name}: ${build.dockerfile}`);
      images.add(`${s.image} ${build.context} ${build.dockerfile}`);
      assert.ok(s.command!.includes(`dist/${name}.mjs`), `${name} runs dist/${name}.mjs`);
      assert.match(buildScript, new RegExp(`\\b${name}: 'services/${name}/src/main\\.ts'`), `infra/build.mjs bundles dist/${name}.mjs`);
    }
    assert.equal(images.size, 1, 'one image for the four services');
  });

  it('ports: gateway 8080, FTP 21 to 2121 and the passive range 1:1, discovery on the host network', () => {
    const s = deployed.services;
    assert.deepEqual(s.gateway!.ports!.map(published), [{ ip: undefined, host: '8080', container: '8080' }]);
    const [control, passive] = s.ftp!.ports!.map(published);
    assert.deepEqual(control, { ip: undefined, host: '21', container: '2121' });
    assert.equal(passive!.host, passive!.container, 'the passive range is published one to one');
    assert.equal(passive!.host, s.ftp!.environment!.NONDIVY_FTP_PASV_RANGE);
    assert.equal(s.ftp!.environment!.NONDIVY_FTP_PASV_ADDRESS, OPERATOR_VALUES.NONDIVY_FTP_PASV_ADDRESS);
    assert.equal(s.discovery!.network_mode, 'host');
    assert.equal(s.discovery!.ports, undefined);
    assert.match(composeText, /network_mode: host/);
    assert.match(composeText, /multicast/i, 'the compose file says why discovery uses the host network');
    assert.equal(s.catalog!.ports, undefined, 'the catalog is internal');
  });

  it('the passive range is small by default (a docker-proxy per published port), and the file says how to turn the proxy off', () => {
    const range = pasvRangeDefault();
    const [first, last] = range.split('-').map(Number) as [number, number];
    const count = last - first + 1;
    // Docker's userland proxy runs one process per published port and address family (~3 MiB
    // each): 50 ports made 105 processes and 334 MiB.
    assert.ok(count >= 8 && count <= 16, `the default passive range ${range} has ${count} ports (8 to 16)`);
    const ftp = load('ftp', serviceEnv(deployed, 'ftp')).config as ReturnType<typeof loadFtpConfig>;
    assert.deepEqual([ftp.ftp.pasvMin, ftp.ftp.pasvMax], [first, last], 'the FTP service uses the published range');
    assert.match(composeText, /^#.*"userland-proxy": false/m, 'the compose file documents "userland-proxy": false');
    const expose = docker.instructions.find((i) => i.keyword === 'EXPOSE')?.args ?? '';
    assert.ok(expose.split(/\s+/).includes(range), `the Dockerfile's EXPOSE names ${range} (${expose})`);
  });

  it('every variable each service reads is set by the compose file, and the services accept it', () => {
    for (const name of NONDIVY_SERVICES) {
      const env = serviceEnv(deployed, name);
      const { reads } = load(name, env);
      assert.ok(env.REDIS_URL, `${name}: REDIS_URL (required when a service runs alone)`);
      const unset = reads.filter((v) => !(v in env));
      assert.deepEqual(unset, [], `${name} reads ${unset.join(', ')}, which docker-compose.yml does not pass (add ${unset.length > 1 ? 'them' : 'it'} to the service's environment and to .env.example)`);
    }
    // An admin password and the FTP TLS files, as an operator may set them, are accepted too.
    const operator = render({
      ...filledEnv(),
      NONDIVY_ADMIN_PASSWORD: 'a long admin password',
      NONDIVY_FTP_TLS_CERT: '/run/secrets/ftp_tls_cert',
      NONDIVY_FTP_TLS_KEY: '/run/secrets/ftp_tls_key',
      NONDIVY_FTP_TLS_REQUIRED: '1',
    }).compose;
    assert.equal((load('gateway', serviceEnv(operator, 'gateway')).config as ReturnType<typeof loadGatewayConfig>).auth.adminPassword, 'a long admin password');
    assert.equal((load('ftp', serviceEnv(operator, 'ftp')).config as ReturnType<typeof loadFtpConfig>).ftp.tls?.keyFile, '/run/secrets/ftp_tls_key');
  });

  it('the services find each other: service names, ports, and the published ports discovery announces', () => {
    const env = (n: NondivyService) => serviceEnv(deployed, n);
    const gateway = load('gateway', env('gateway')).config as ReturnType<typeof loadGatewayConfig>;
    const catalog = load('catalog', env('catalog')).config as ReturnType<typeof loadCatalogConfig>;
    const ftp = load('ftp', env('ftp')).config as ReturnType<typeof loadFtpConfig>;
    const discovery = load('discovery', env('discovery')).config as ReturnType<typeof loadDiscoveryConfig>;
    const s = deployed.services;

    const catalogUrl = new URL(gateway.catalogUrl);
    assert.equal(catalogUrl.hostname, 'catalog');
    assert.equal(Number(catalogUrl.port), catalog.http.port);
    for (const c of [gateway, catalog, ftp]) {
      assert.equal(c.blobs.driver, 's3');
      assert.equal(new URL((c.blobs as { endpoint: string }).endpoint).hostname, 'minio');
      assert.equal(new URL(c.redis.url!).hostname, 'redis');
      assert.equal(new URL(c.redis.url!).password, OPERATOR_VALUES.REDIS_PASSWORD);
    }
    assert.equal((gateway.blobs as { secretKey: string }).secretKey, OPERATOR_VALUES.MINIO_ROOT_PASSWORD);
    // Discovery is on the host network: Redis through its loopback publication.
    const redisOnHost = published(s.redis!.ports![0]!);
    assert.deepEqual([new URL(discovery.redis.url!).hostname, new URL(discovery.redis.url!).port], ['127.0.0.1', redisOnHost.host]);
    assert.equal(discovery.http.host, '127.0.0.1', 'discovery\'s HTTP port stays off the LAN');
    assert.equal(discovery.announce.enabled, true);
    // The containers listen where the ports are published to; discovery announces the host's side.
    const [gatewayPort] = s.gateway!.ports!.map(published);
    const [ftpPort] = s.ftp!.ports!.map(published);
    assert.equal(gateway.http.port, Number(gatewayPort!.container));
    assert.equal(ftp.ftp.port, Number(ftpPort!.container));
    assert.equal(discovery.announce.httpPort, Number(gatewayPort!.host));
    assert.equal(discovery.announce.ftpPort, Number(ftpPort!.host));
    assert.equal(gateway.http.publicUrl, `http://${OPERATOR_VALUES.NONDIVY_FTP_PASV_ADDRESS}:${gatewayPort!.host}`);
    assert.equal(discovery.announce.publicUrl, gateway.http.publicUrl);
    // The health check reads the same ports as the services.
    assert.equal(env('catalog').NONDIVY_CATALOG_PORT, String(catalog.http.port));
  });
});

describe('.env.example', () => {
  const { refs } = render({});
  const referenced = new Set(refs.map((r) => r.name));

  it('lists every variable of the compose file, and only those, each after a sentence saying what it does', () => {
    const documented = new Set([...settings.keys(), ...documentedDefaults.keys()]);
    assert.deepEqual([...referenced].filter((v) => !documented.has(v)), [], 'used by docker-compose.yml but not in .env.example');
    assert.deepEqual([...documented].filter((v) => !referenced.has(v)), [], 'in .env.example but unused by docker-compose.yml');
    for (const [name, { line }] of [...settings, ...documentedDefaults]) {
      let i = line - 1;
      while (i >= 0 && DOCUMENTED_DEFAULT.test(envExampleLines[i]!)) i--;
      assert.match(envExampleLines[i] ?? '', /^# \S/, `${name} (line ${line + 1}) has a sentence above it`);
    }
  });

  it('ships no secret: the required settings are empty and are the ones the compose file requires', () => {
    const required = new Set(refs.filter((r) => r.op === ':?').map((r) => r.name));
    for (const name of required) assert.equal(settings.get(name)?.value, '', `${name} is an empty setting for the operator to fill`);
    for (const [name, { value }] of settings) {
      if (/PASSWORD|SECRET|KEY/.test(name)) assert.equal(value, '', `${name} ships no value`);
    }
  });

  it('every documented default is the real default (the compose file\'s, else the service\'s own)', () => {
    for (const [name, { value }] of documentedDefaults) {
      const uses = refs.filter((r) => r.name === name);
      const literalDefaults = new Set(uses.filter((r) => r.op === ':-' && r.arg !== '' && !r.arg.includes('$')).map((r) => r.arg));
      const computed = uses.some((r) => r.op === ':-' && r.arg.includes('$'));
      if (literalDefaults.size > 0) {
        assert.deepEqual([...literalDefaults], [value], `${name}: documented ${value}, docker-compose.yml defaults to ${[...literalDefaults].join(' / ')}`);
      } else if (computed) {
        assert.equal(value, '', `${name}: its default is computed by docker-compose.yml, documented in words`);
      } else {
        // Passed through empty: the service's own default applies, and must be the one documented.
        let checked = 0;
        for (const service of NONDIVY_SERVICES) {
          const env = serviceEnv(deployed, service);
          const key = Object.entries(rawCompose.services[service]!.environment ?? {}).find(([, v]) => v === `\${${name}:-}`)?.[0];
          if (!key) continue;
          checked++;
          const without = load(service, { ...env, [key]: '' }).config;
          const withDocumented = load(service, { ...env, [key]: value }).config;
          assert.deepEqual(withDocumented, without, `${name}=${value} is ${service}'s default`);
        }
        assert.ok(checked > 0, `${name} is passed to a service`);
      }
    }
  });
});

describe('infra/Dockerfile and .dockerignore', () => {
  const stageNames = docker.stages.map((s) => s.name);

  it('multi-stage on the Node 24 image: the lock file (npm ci), dev dependencies pruned, the build', () => {
    assert.ok(docker.stages.length >= 3, 'multi-stage');
    assert.equal(new Set(stageNames).size, stageNames.length, 'stage names are unique');
    docker.stages.forEach((stage, i) => {
      const image = stage.from.replace(/^\$\{(\w+)\}$/, (_, arg: string) => docker.args[arg] ?? '');
      if (stageNames.slice(0, i).includes(stage.from)) return;
      assert.match(image, /^node:24[.-]/, `stage ${stage.name ?? i} starts from Node 24 (${stage.from})`);
    });
    const runs = docker.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    assert.ok(runs.some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r)), 'npm ci from the lock file for the build');
    assert.ok(runs.some((r) => /\bnpm ci\b.*--omit=dev|npm prune\b.*--omit=dev/.test(r)), 'dev dependencies left out of the runtime');
    assert.ok(runs.some((r) => /\bnode infra\/build\.mjs\b/.test(r)), 'the bundles are built');
    // The manifests stage copies every workspace's package.json: its globs are the workspaces'.
    const loop = runs.find((r) => r.includes('package.json') && r.includes('for f in'))!;
    assert.deepEqual(workspaces.map((w) => `${w}/package.json`), loop.match(/\b[\w-]+\/\*\/package\.json/g));
  });

  it('its stages reference stages and files that exist, and that .dockerignore lets through', () => {
    for (const ins of docker.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
      const tokens = ins.args.split(/\s+/);
      const from = tokens.find((t) => t.startsWith('--from='))?.slice('--from='.length);
      const paths = tokens.filter((t) => !t.startsWith('--'));
      const sources = paths.slice(0, -1);
      assert.ok(sources.length > 0, `COPY ${ins.args}`);
      if (from) {
        assert.ok(stageNames.slice(0, ins.stage).includes(from), `COPY --from=${from} names an earlier stage`);
        continue;
      }
      for (const source of sources) {
        const path = source.replace(/^\.\/?/, '');
        assert.ok(existsSync(join(ROOT, path || '.')), `COPY source ${source} exists`);
        if (path) assert.ok(!ignored(path), `COPY source ${source} is not excluded by .dockerignore`);
      }
    }
    for (const ins of docker.instructions) {
      for (const [, script] of ins.args.matchAll(/\bnode (?:--\S+ )*"?((?:infra|dist)\/[\w./-]+\.mjs)/g)) {
        if (script!.startsWith('dist/')) {
          assert.match(read('infra/build.mjs'), new RegExp(`\\b${script!.slice(5, -4)}: '`), `${script} is built by infra/build.mjs`);
        } else {
          assert.ok(existsSync(join(ROOT, script!)) && !ignored(script!), `${script} exists and reaches the builder`);
        }
      }
    }
  });

  it('runs as a non-root user under tini, with a health check', () => {
    const last = docker.stages.length - 1;
    const final = docker.instructions.filter((i) => i.stage === last);
    const user = final.filter((i) => i.keyword === 'USER').pop()?.args.trim();
    assert.ok(user && user !== 'root' && user !== '0', `USER ${user}`);
    assert.match(final.find((i) => i.keyword === 'ENTRYPOINT')?.args ?? '', /tini/);
    const healthcheck = final.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
    assert.match(healthcheck, /infra\/healthcheck\.mjs/);
    assert.ok(final.some((i) => i.keyword === 'COPY' && i.args.includes('infra/healthcheck.mjs')), 'the health check script is in the image');
    assert.match(final.find((i) => i.keyword === 'CMD')?.args ?? '', /dist\/gateway\.mjs/);
  });

  it('.dockerignore keeps data, dependencies, build output and secrets out, and the sources in', () => {
    for (const path of ['node_modules', 'node_modules/zod/package.json', 'libs/storage/node_modules/x', 'dist/gateway.mjs', 'data', 'data/redis/appendonly.aof', '.env', '.git/HEAD', 'secrets/admin_password', 'clients/cli/dist/cli.mjs']) {
      assert.ok(ignored(path), `${path} stays out of the image build`);
    }
    const needed = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.base.json', 'infra/build.mjs', 'infra/healthcheck.mjs'];
    for (const dir of workspaceDirs) needed.push(`${dir}/package.json`, `${dir}/src`);
    for (const path of needed) {
      if (existsSync(join(ROOT, path))) assert.ok(!ignored(path), `${path} reaches the builder`);
    }
  });
});

describe('what stays out of the build context and of git: backups, data, .env, secrets', () => {
  const section = deploymentSection();
  /** The folder the README's backup step writes to (`-v "$PWD/<folder>":/backup`). */
  const backupDir = /-v "\$PWD\/([\w.-]+)":\/backup\b/.exec(section)?.[1];

  it('.dockerignore leaves them all out (the build stages copy the whole context)', () => {
    assert.ok(backupDir, 'the README backs up into a folder of the project');
    const paths = [
      backupDir, `${backupDir}/redis-data-2025-01-31.tar.gz`, `${backupDir}/minio-data-2025-01-31.tar.gz`,
      'data', 'data/redis/appendonly.aof', 'data/blobs/ab/cd', 'dump.rdb', 'appendonly.aof', 'redis-data-2025-01-31.tar.gz',
      '.env', '.env.local', 'services/gateway/.env', 'secrets', 'secrets/admin_password', 'infra/secrets/ftp_tls_key',
    ];
    for (const path of paths) assert.ok(ignored(path), `${path} stays out of the build context`);
  });

  it('.gitignore leaves them out too', { skip: spawnSync('git', ['--version']).status === 0 ? false : 'no git' }, () => {
    for (const path of [`${backupDir}/redis-data-2025-01-31.tar.gz`, 'data/redis/appendonly.aof', 'dump.rdb', '.env', 'secrets/admin_password']) {
      const res = spawnSync('git', ['check-ignore', '-q', '--no-index', path], { cwd: ROOT });
      assert.equal(res.status, 0, `git ignores ${path}`);
    }
  });
});

describe('README deployment section', () => {
  const section = deploymentSection();

  it('exists and covers the ports, the PASV address, the admin password, upgrading and backing up both volumes', () => {
    assert.ok(section, 'a "## Deployment (Docker Compose)" section');
    const range = pasvRangeDefault();
    for (const needle of ['docker compose up -d --build', '8080', '21/tcp', range, range.replace('-', ':'), '5353/udp', 'NONDIVY_FTP_PASV_ADDRESS', 'NONDIVY_ADMIN_PASSWORD', 'Upgrading', 'userland-proxy']) {
      assert.ok(section.includes(needle), `mentions ${needle}`);
    }
    for (const volume of Object.keys(rawCompose.volumes ?? {})) {
      assert.ok(section.includes(`${rawCompose.name}_${volume}`) || section.includes(`${rawCompose.name}_$v`), `the backup covers the ${volume} volume`);
      assert.ok(section.includes(volume), `names the ${volume} volume`);
    }
  });

  it('its backup and restore commands run the Redis image the stack runs (REDIS_IMAGE), not a fixed one', () => {
    const runs = section.split('\n').filter((l) => /\bdocker run\b/.test(l));
    assert.ok(runs.length >= 2, 'a backup and a restore command');
    for (const line of runs) assert.doesNotMatch(line, /\bredis:[\w.-]+/, `names no fixed Redis image: ${line.trim()}`);
    assert.match(section, /docker compose config --images redis\b/, 'the image comes from the compose configuration (REDIS_IMAGE or its default)');
  });

  it('its override examples are valid Compose files', () => {
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
    const validate = ajv.compile(JSON.parse(read('infra/compose-spec.json')) as object);
    const blocks = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.ok(blocks.length > 0);
    for (const block of blocks) {
      const doc = parseYaml(block) as ComposeFile;
      assert.ok(validate(doc), ajv.errorsText(validate.errors));
      for (const name of Object.keys(doc.services ?? {})) assert.ok(rawCompose.services[name], `overrides an existing service (${name})`);
    }
  });
});

describe('docker compose CLI', () => {
  const cli = composeCli();
  it('`docker compose config` accepts the file', { skip: cli ? false : 'no docker compose CLI on this machine (the schema checks above ran)' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'nondivy-compose-'));
    try {
      const envFile = join(dir, 'env');
      writeFileSync(envFile, Object.entries(filledEnv()).map(([k, v]) => `${k}=${v ?? ''}`).join('\n'));
      const res = spawnSync(cli![0]!, [...cli!.slice(1), '--project-directory', ROOT, '-f', join(ROOT, 'docker-compose.yml'), '--env-file', envFile, 'config', '-q'], { encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
