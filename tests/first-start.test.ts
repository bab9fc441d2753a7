/**
 * The first hour of a new user. On a terminal (a pseudo-terminal from util-linux `script`), `npm
 * start` prints a banner — where to open the site, a QR code of that address, the FTP address, the
 * API docs and, on the first start only, the admin password — then human log lines. Elsewhere
 * (Compose, systemd, these tests' pipes) it writes JSON lines as before, without a line per request
 * at the default level. A site has a distinct default name, malformed URLs get problem documents,
 * and a file name with no ASCII form still gets a readable fallback.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import qrcode from 'qrcode-generator';
import { login, rawRequest, upload } from './helpers/http.js';
import { freePort, freePortRange, startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { loopbackEnv, startServer, type TestServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** How long a start may take before the test gives up (ms). */
const START_TIMEOUT_MS = Number(process.env.FIRST_START_TIMEOUT_MS ?? 30_000);
const PUBLIC_URL = 'http://nondivy.test:8080';
const SITE_NAME = `Nondivy on ${hostname().split('.')[0]}`;

const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '');

interface TerminalRun {
  port: number;
  ftpPort: number;
  /** Everything printed so far, colours removed, lines split on \r\n. */
  lines(): string[];
  raw(): string;
  waitFor(pattern: RegExp): Promise<void>;
  /** Ctrl+C on the terminal, as a person stops it; resolves with the exit code. */
  interrupt(): Promise<number | null>;
}

/** Runs `node dist/standalone.mjs` on a pseudo-terminal, as a person runs `npm start`. */
async function startOnTerminal(env: Record<string, string>): Promise<TerminalRun> {
  const port = await freePort();
  const ftpPort = await freePort();
  const child: ChildProcess = spawn('script', ['-qec', `exec ${process.execPath} dist/standalone.mjs`, '/dev/null'], {
    cwd: ROOT,
    env: { ...loopbackEnv(port, ftpPort, await freePortRange(4)), TERM: 'xterm', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let raw = '';
  child.stdout!.on('data', (d: Buffer) => (raw += d));
  child.stderr!.on('data', (d: Buffer) => (raw += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const run: TerminalRun = {
    port,
    ftpPort,
    raw: () => raw,
    lines: () => stripAnsi(raw).split(/\r?\n/),
    waitFor: async (pattern) => {
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!pattern.test(stripAnsi(raw))) {
        if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before ${pattern}:\n${raw}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${START_TIMEOUT_MS} ms:\n${raw}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    interrupt: async () => {
      if (child.exitCode === null) child.stdin!.write('\x03');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  return run;
}

/** The QR code block of the banner, read back into modules (true: dark), quiet zone included. */
function qrModulesIn(lines: string[]): { modules: boolean[][]; width: number } {
  const block = /^ *[█▀▄ ]*[█▀▄][█▀▄ ]*$/;
  const start = lines.findIndex((l) => block.test(l) && l.includes('█'));
  assert.ok(start >= 0, `a QR code block:\n${lines.join('\n')}`);
  let end = start;
  while (end < lines.length && block.test(lines[end]!) && lines[end]!.trim() !== '') end++;
  const rows = lines.slice(start, end);
  const indent = Math.min(...rows.map((r) => r.length - r.trimStart().length));
  const modules: boolean[][] = [];
  for (const row of rows.map((r) => r.slice(indent))) {
    // Light modules are drawn: █ both halves, ▀ the upper, ▄ the lower.
    const top = [...row].map((c) => !(c === '█' || c === '▀'));
    const bottom = [...row].map((c) => !(c === '█' || c === '▄'));
    modules.push(top, bottom);
  }
  return { modules, width: Math.max(...rows.map((r) => [...r].length)) };
}

/** Asserts the banner's QR code encodes `text`: its modules are those of the QR code of `text`. */
function assertQrOf(lines: string[], text: string) {
  const { modules, width } = qrModulesIn(lines);
  assert.ok(width <= 35, `the QR code fits 35 columns (${width})`);
  const qr = qrcode(0, 'L');
  qr.addData(text, 'Byte');
  qr.make();
  const size = qr.getModuleCount();
  // Find the code inside its quiet zone: its first row starts with the dark top of a finder pattern.
  const top = modules.findIndex((row) => row.includes(true));
  const left = modules[top]?.indexOf(true) ?? -1;
  assert.ok(top >= 1 && left >= 1, `a light quiet zone around the code:\n${lines.join('\n')}`);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) assert.equal(modules[top + r]![left + c], qr.isDark(r, c), `module ${r},${c} of the QR code of ${text}`);
  }
}

let redis: TestRedis;
const dirs: { cleanup(): void }[] = [];
const dataDir = () => {
  const d = tempDir('nondivy-first-start-');
  dirs.push(d);
  return d.path;
};

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.close();
  for (const d of dirs) d.cleanup();
});

describe('npm start on a terminal', () => {
  // Database 1 of the test Redis: no admin yet, then the admin of the first start.
  const env = () => ({ REDIS_URL: `${redis.url}/1`, NONDIVY_PUBLIC_URL: PUBLIC_URL });
  let data: string;
  before(() => {
    data = dataDir();
  });

  it('prints the banner: the address, its QR code, the FTP address, the docs and the admin password, then human log lines', async () => {
    const run = await startOnTerminal({ ...env(), NONDIVY_DATA_DIR: data });
    try {
      await run.waitFor(/Log lines follow/);
      const text = run.lines().join('\n');
      assert.ok(text.includes(`Nondivy "${SITE_NAME}" is ready`), text);
      assert.match(text, new RegExp(`Open on this network: +${PUBLIC_URL.replace(/[.:/]/g, '\\$&')}\n`));
      assertQrOf(run.lines(), PUBLIC_URL);
      assert.match(text, new RegExp(`FTP: +ftp://127\\.0\\.0\\.1:${run.ftpPort}\n`));
      assert.match(text, new RegExp(`API docs: +${PUBLIC_URL.replace(/[.:/]/g, '\\$&')}/docs\n`));
      const password = /Log in as: +admin +\/ +(\S+)/.exec(text)?.[1];
      assert.ok(password, `the admin password is shown:\n${text}`);
      assert.match(text, /NONDIVY_ADMIN_PASSWORD/, 'says how to choose another');
      assert.equal(text.split(password).length - 1, 1, 'the password is printed once, in the banner only');
      // The password shown is the admin's.
      await login(`http://127.0.0.1:${run.port}/api/v1`, 'admin', password);
      // Human log lines, no JSON.
      assert.ok(run.lines().some((l) => /^\d\d:\d\d:\d\d (INFO|WARN) +gateway +gateway listening/.test(l)), text);
      assert.deepEqual(run.lines().filter((l) => l.startsWith('{')), [], 'no JSON line on a terminal');
    } finally {
      assert.equal(await run.interrupt(), 0, 'Ctrl+C stops it cleanly');
    }
  });

  it('does not show the password again on the next start', async () => {
    const run = await startOnTerminal({ ...env(), NONDIVY_DATA_DIR: data });
    try {
      await run.waitFor(/Log lines follow/);
      const text = run.lines().join('\n');
      assert.ok(text.includes(`Open on this network:  ${PUBLIC_URL}`), text);
      assert.doesNotMatch(text, /Log in as|Admin account created|one-time/i);
    } finally {
      await run.interrupt();
    }
  });

  it('writes JSON lines with NONDIVY_LOG_FORMAT=json, and each request at debug with LOG_LEVEL=debug', async () => {
    const run = await startOnTerminal({ ...env(), NONDIVY_DATA_DIR: data, NONDIVY_LOG_FORMAT: 'json', LOG_LEVEL: 'debug' });
    try {
      await run.waitFor(/is ready/);
      const res = await fetch(`http://127.0.0.1:${run.port}/api/v1/library?q=requestMarker`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      await run.waitFor(/"request completed"/);
      const lines = run.lines().filter((l) => l.trim() !== '' && !l.startsWith('^C'));
      const entries = lines.map((l) => JSON.parse(l) as { level: number; msg: string; req?: { url?: string } });
      assert.ok(!run.raw().includes('Open on this network'), 'no banner');
      const incoming = entries.find((e) => e.msg === 'incoming request' && e.req?.url?.includes('requestMarker'));
      assert.equal(incoming?.level, 20, 'the request is logged at debug');
      assert.ok(entries.some((e) => e.msg === 'request completed' && e.level === 20));
    } finally {
      await run.interrupt();
    }
  });
});

describe('npm start elsewhere (JSON lines)', () => {
  let server: TestServer;
  let password: string;
  before(async () => {
    // Database 2: a first start, without NONDIVY_ADMIN_PASSWORD nor NONDIVY_SITE_NAME.
    server = await startServer({ REDIS_URL: `${redis.url}/2`, NONDIVY_DATA_DIR: dataDir() });
    const line = server.logs.find((l) => typeof l.oneTimePassword === 'string');
    assert.ok(line, 'the one-time password is in a JSON line');
    assert.equal(line.level, 40);
    password = line.oneTimePassword as string;
  });
  after(async () => {
    await server?.stop();
  });

  it('names the site after its host by default', () => {
    const ready = server.logs.find((l) => /is ready/.test(l.msg));
    assert.equal(ready?.msg, `Nondivy "${SITE_NAME}" is ready`);
  });

  it('logs no line per request at the default level (info)', async () => {
    const res = await fetch(`${server.api}/library?q=requestMarker`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // A request that fails with 404 is not a warning either (under the API: elsewhere the web app answers).
    const missing = await fetch(`${server.api}/no-such-page`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    await new Promise((r) => setTimeout(r, 300));
    const perRequest = server.logs.filter((l) => /incoming request|request completed|not found/i.test(l.msg));
    assert.deepEqual(perRequest, []);
    assert.ok(!server.rawOutput().includes('requestMarker'));
  });

  it('answers a URL with raw non-ASCII bytes, or one that does not decode, with 400 problem+json', async () => {
    const cases = [
      Buffer.concat([Buffer.from('GET /api/v1/library?q='), Buffer.from('日本'), Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')]),
      Buffer.from('GET /api/v1/library/%E0%A4%A HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    ];
    for (const request of cases) {
      const answer = await rawRequest(server.port, [request]);
      const [head, body] = answer.split('\r\n\r\n');
      assert.match(head!, /^HTTP\/1\.1 400 /, answer);
      assert.match(head!, /\r\ncontent-type: application\/problem\+json/i, answer);
      const problem = JSON.parse(body!) as { type: string; title: string; status: number; detail: string };
      assert.equal(problem.status, 400);
      assert.equal(problem.title, 'Bad Request');
      assert.equal(problem.type, 'about:blank');
      assert.ok(problem.detail);
    }
    // The server goes on serving.
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });

  it('gives a file name with no ASCII form a readable fallback, and the exact name in filename*', async () => {
    const token = await login(server.api, 'admin', password);
    const res = await upload(server.api, token, Buffer.from('本'), '日本語の本.txt');
    assert.equal(res.status, 201);
    const item = (await res.json()) as { id: string };
    const content = await fetch(`${server.api}/library/${item.id}/content`);
    await content.body?.cancel();
    assert.equal(content.headers.get('content-disposition'), `inline; filename="download.txt"; filename*=UTF-8''${encodeURIComponent('日本語の本.txt')}`);
  });
});
