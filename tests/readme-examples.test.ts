/**
 * The READMEs' shell examples, run as written against a standalone server, so that the docs cannot
 * drift from the code. Every command line of every ```sh block is run with bash (`set -o pipefail`)
 * in a throwaway folder and must exit 0; `curl` on PATH adds `--fail-with-body`, so an HTTP error
 * fails the command, and `nondivy` is the built CLI. The variables and placeholders the READMEs use
 * (`$S`, `<id>`, `<nextCursor>`, `…` passwords, `PASSWORD`, the default ports, book.epub…) are
 * set up or substituted from the tables below. A line that cannot run in a test is skipped only with
 * a reason in `SKIPPED` (a block marked `<!-- examples: skip -->` still needs one per line), and a
 * reason that matches no line fails the test: skipping cannot grow silently, nor outlive its line.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { bearer, login, upload } from './helpers/http.js';
import { startRedis, tempDir, type TestRedis } from './helpers/infra.js';
import { mp3 } from './helpers/media.js';
import { extractExamples, type Example } from './helpers/readme-examples.js';
import { startServer, type TestServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const READMES = ['README.md', 'clients/cli/README.md', 'services/README.md', 'libs/README.md', 'tests/README.md', 'infra/README.md', 'bench/README.md'];
const CLI_BUNDLE = join(ROOT, 'clients/cli/dist/nondivy.mjs');
/** Longest any one example may take before it counts as hung. */
const LINE_TIMEOUT_MS = Number(process.env.README_EXAMPLE_TIMEOUT_MS ?? 20_000);

const ADMIN_PASSWORD = 'readme admin password';
const ALICE_PASSWORD = 'alice long password';

/** Lines that are not run, and why. Each must match a line, and each line not run must match one. */
const SKIPPED: { match: RegExp; reason: string }[] = [
  { match: /^npm ci && npm start\b/, reason: 'installs the packages and runs the server in the foreground; this test runs the same server (dist/standalone.mjs)' },
  { match: /^npm ci && npx nondivy --help\b/, reason: 'npm ci would reinstall node_modules under the other suites' },
  { match: /^npm (test|run (typecheck|test:unit|test:mutation|bench))\b/, reason: "the project's own checks (this test is one of them): minutes of CPU" },
  { match: /^npm run (build|reindex)\b/, reason: 'rebuilds dist/, which the other suites run from (reindex: catalog.test.ts)' },
  { match: /^npm i -g /, reason: 'installs the CLI for the whole machine' },
  { match: /^cp \.env\.example /, reason: "writes the Compose deployment's .env into the checkout" },
  { match: /^(docker |image=\$\(docker )/, reason: 'Docker Compose on a host (compose.test.ts checks the compose file)' },
  { match: /^(mkdir -p backups |for v in redis-data minio-data; do$|done$)/, reason: "the backup and restore loops over the Compose volumes (docker run)" },
  { match: /^git pull$/, reason: 'updates the checkout from its remote' },
  { match: /^nondivy discover\b/, reason: 'browses the LAN by multicast DNS; the tests stay on loopback (discovery.test.ts browses inside network namespaces)' },
  { match: /^nondivy (link (ndv1\.|CODE)|unlink )/, reason: 'needs a second site (federation-cli.test.ts)' },
  { match: /@Riverside\b/, reason: 'needs a linked site named Riverside (cli-first-hour.test.ts, federation-cli.test.ts)' },
  { match: /^nondivy start\b/, reason: 'runs another site in the foreground (npm start)' },
];

/** Lines that never end by themselves: run for a while, then stopped; they must have printed `expect`. */
const RUN_FOR: { match: RegExp; seconds: number; expect: RegExp }[] = [
  { match: /^curl -sN \$S\/events\b/, seconds: 1, expect: /^retry: 3000$/m },
  { match: /^nondivy receive\b/, seconds: 3, expect: /receiving into .* as "/ },
];

describe('the READMEs shell examples', () => {
  let redis: TestRedis;
  let server: TestServer;
  let work: { path: string; cleanup(): void };
  let ops: string;
  let opsPassword = 'ops long password 0';
  let itemId = '';
  let laptop: ChildProcess | undefined;
  /** Files the laptop holds so far. */
  let received = 0;
  const examples: Example[] = READMES.flatMap((file) => extractExamples(ROOT, file));
  const book = Buffer.from('PK\u0003\u0004 not quite an EPUB, enough for the examples\n'.repeat(64));

  /** Answers the CLI gets on stdin or in its environment, where the example would ask a person. */
  const INPUT: { match: RegExp; stdin?: () => string; env?: () => Record<string, string> }[] = [
    { match: /^nondivy login alice\b/, env: () => ({ NONDIVY_PASSWORD: ALICE_PASSWORD }) },
    {
      match: /^nondivy passwd\b/,
      stdin: () => {
        const old = opsPassword;
        opsPassword = `ops long password ${Number(old.split(' ').pop()) + 1}`;
        return `${old}\n${opsPassword}\n`;
      },
    },
    { match: /^nondivy users add bob\b/, stdin: () => 'bob long password\n' },
  ];

  const api = (path: string, init: RequestInit = {}) => fetch(`${server.api}${path}`, { ...init, headers: { ...bearer(ops), ...(init.body ? { 'content-type': 'application/json' } : {}) } });

  /**
   * What the examples take for granted: alice is a member with her password (or, for a block that
   * creates her, no alice yet), and `<id>` exists.
   */
  const ensureFixtures = async (createsAlice: boolean) => {
    if (createsAlice) {
      const gone = await api('/users/alice', { method: 'DELETE' });
      assert.ok(gone.status === 204 || gone.status === 404, await gone.text());
    } else await ensureAlice();
    if (itemId && (await fetch(`${server.api}/library/${itemId}`)).status === 200) return;
    const res = await upload(server.api, ops, book, 'Dune.epub', { title: 'Dune', kind: 'ebook', tags: 'scifi,classic' });
    const body = await res.text();
    assert.equal(res.status, 201, body);
    itemId = (JSON.parse(body) as { id: string }).id;
  };
  const ensureAlice = async () => {
    const created = await api('/users', { method: 'POST', body: JSON.stringify({ username: 'alice', password: ALICE_PASSWORD, role: 'member' }) });
    if (created.status === 409) {
      const reset = await api('/users/alice', { method: 'PATCH', body: JSON.stringify({ role: 'member', password: ALICE_PASSWORD }) });
      assert.equal(reset.status, 200, await reset.text());
    } else assert.equal(created.status, 201, await created.text());
  };

  /** A `nextCursor` of the popular sort, for `cursor=<nextCursor>`. */
  const nextCursor = async () => {
    const page = (await (await fetch(`${server.api}/library?sort=popular&limit=1`)).json()) as { nextCursor: string | null };
    assert.ok(page.nextCursor, 'the library should hold more than one item here');
    return encodeURIComponent(page.nextCursor);
  };

  /** The line as the test runs it: the server's ports and the placeholders filled in. */
  const substitute = async (text: string) => {
    let line = text
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${server.port}`)
      .replaceAll('127.0.0.1:2121', `127.0.0.1:${server.ftpPort}`)
      .replaceAll('npx nondivy', 'nondivy')
      .replaceAll('"…"', JSON.stringify(ADMIN_PASSWORD))
      .replaceAll('alice:PASSWORD@', `alice:${encodeURIComponent(ALICE_PASSWORD)}@`)
      .replaceAll('<id>', itemId);
    if (line.includes('<nextCursor>')) line = line.replaceAll('<nextCursor>', await nextCursor());
    // Only the command: its comment may say anything.
    const unknown = /<[A-Za-z][\w-]*>|…/.exec(line.replace(/\s#\s.*$/, ''));
    assert.equal(unknown, null, `a placeholder this test does not fill: ${unknown?.[0]} (add it to substitute)`);
    return line;
  };

  /** Runs one line with bash in `dir`; the variables it sets carry over to the next lines through `state`. */
  const run = (line: string, dir: string, opts: { stdin?: string; env?: Record<string, string>; runFor?: number }) => {
    const script = join(work.path, 'line.sh');
    writeFileSync(script, ['set -o pipefail', 'set -a', `. ${JSON.stringify(join(work.path, 'state.sh'))}`, `cd ${JSON.stringify(dir)}`, line, 'rc=$?', `export -p > ${JSON.stringify(join(work.path, 'state.sh'))}`, 'exit $rc', ''].join('\n'));
    const child = spawn('bash', [script], {
      cwd: dir,
      detached: true,
      env: { PATH: `${join(work.path, 'bin')}:${process.env.PATH ?? ''}`, HOME: join(work.path, 'home'), LANG: 'C.UTF-8', NONDIVY_SERVER: server.url, NONDIVY_TOKEN: ops, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // A command that reads no stdin may exit before it is written: that is no failure.
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.stdin ?? '');
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    let stoppedByUs = false;
    const limit = opts.runFor !== undefined ? opts.runFor * 1000 : LINE_TIMEOUT_MS;
    const timer = setTimeout(() => {
      stoppedByUs = true;
      process.kill(-child.pid!, opts.runFor !== undefined ? 'SIGTERM' : 'SIGKILL');
    }, limit);
    return new Promise<{ code: number | null; out: string; err: string; stoppedByUs: boolean }>((resolve) =>
      child.once('exit', (code) => {
        clearTimeout(timer);
        // Let the pipes drain before reading what was printed.
        setImmediate(() => resolve({ code, out, err, stoppedByUs }));
      }),
    );
  };

  before(async () => {
    assert.ok(existsSync(CLI_BUNDLE) && existsSync(join(ROOT, 'dist/standalone.mjs')), 'run node infra/build.mjs first');
    work = tempDir('nondivy-readme-');
    for (const d of ['bin', 'home', 'data', 'laptop']) mkdirSync(join(work.path, d));
    writeFileSync(join(work.path, 'state.sh'), '');
    const realCurl = spawnSync('sh', ['-c', 'command -v curl'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(join(work.path, 'bin/curl'), `#!/bin/sh\nexec ${realCurl} --fail-with-body "$@"\n`, { mode: 0o755 });
    writeFileSync(join(work.path, 'bin/nondivy'), `#!/bin/sh\nexec ${process.execPath} ${CLI_BUNDLE} "$@"\n`, { mode: 0o755 });
    redis = await startRedis();
    server = await startServer({ REDIS_URL: redis.url, NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD, NONDIVY_DATA_DIR: join(work.path, 'data'), NONDIVY_SITE_NAME: 'Hilltop' });
    // The examples change the admin's password and delete accounts: the fixtures use an admin of their own.
    const admin = await login(server.api, 'admin', ADMIN_PASSWORD);
    const created = await fetch(`${server.api}/users`, { method: 'POST', headers: { ...bearer(admin), 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ops', password: opsPassword, role: 'admin' }) });
    assert.equal(created.status, 201, await created.text());
    ops = await login(server.api, 'ops', opsPassword);
    // The device the examples send to ("--to laptop"), accepting every offer.
    laptop = spawn(process.execPath, [CLI_BUNDLE, 'receive', '--yes', '--device', 'laptop', '--listen', '127.0.0.1:0', '--dir', join(work.path, 'laptop')], {
      env: { PATH: process.env.PATH ?? '', HOME: join(work.path, 'home'), NONDIVY_SERVER: server.url, NONDIVY_TOKEN: ops },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let said = '';
    await new Promise<void>((resolve, reject) => {
      const check = (d: Buffer) => ((said += d), said.includes('receiving into') && resolve());
      laptop!.stdout!.on('data', check);
      laptop!.stderr!.on('data', check);
      laptop!.once('exit', (code) => reject(new Error(`the laptop receiver exited (${code}): ${said}`)));
    });
  });

  after(async () => {
    if (laptop && laptop.exitCode === null) {
      const exited = new Promise((r) => laptop!.once('exit', r));
      laptop.kill('SIGTERM');
      await exited;
    }
    await server?.stop();
    await redis?.close();
    work?.cleanup();
  });

  it('every line not run has a reason in the table, and every reason a line', (t) => {
    const unexplained: string[] = [];
    for (const ex of examples) {
      const rule = SKIPPED.find((r) => r.match.test(ex.text));
      if (rule) t.diagnostic(`skipped ${ex.file}:${ex.line} ${ex.text.split('#')[0]!.trim()} — ${rule.reason}`);
      else if (ex.markedSkip) unexplained.push(`${ex.file}:${ex.line} ${ex.text}`);
    }
    assert.deepEqual(unexplained, [], 'lines of blocks marked "examples: skip" without a reason in SKIPPED');
    const stale = [...SKIPPED, ...RUN_FOR, ...INPUT].filter((r) => !examples.some((ex) => r.match.test(ex.text))).map((r) => String(r.match));
    assert.deepEqual(stale, [], 'table entries that match no README line any more');
  });

  const blocks = new Map<string, Example[]>();
  for (const ex of examples) {
    const key = `${ex.file} block ${ex.block + 1}`;
    blocks.set(key, [...(blocks.get(key) ?? []), ex]);
  }
  for (const [name, lines] of blocks) {
    const runnable = lines.filter((ex) => !SKIPPED.some((r) => r.match.test(ex.text)));
    it(`${name} (line ${lines[0]!.line})`, { skip: runnable.length === 0 ? 'every line skipped, with its reason' : false }, async (t) => {
      // Each block is its own example: a fresh folder holding the files it uploads or sends.
      const dir = join(work.path, name.replace(/\W+/g, '-'));
      mkdirSync(dir);
      writeFileSync(join(dir, 'book.epub'), book);
      writeFileSync(join(dir, 'song.mp3'), mp3({ title: 'Blue in Green', artist: 'Miles Davis', album: 'Kind of Blue', track: '3', year: '1959' }));
      writeFileSync(join(dir, 'photo.jpg'), Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2048, 7)]));
      writeFileSync(join(dir, 'notes.pdf'), '%PDF-1.4\n% notes\n');
      await ensureFixtures(lines.some((ex) => ex.text.includes('"username":"alice"')));
      for (const ex of runnable) {
        const where = `${ex.file}:${ex.line} ${ex.text}`;
        const input = INPUT.find((r) => r.match.test(ex.text));
        const runFor = RUN_FOR.find((r) => r.match.test(ex.text));
        const line = await substitute(ex.text);
        const started = Date.now();
        const res = await run(line, dir, { stdin: input?.stdin?.(), env: input?.env?.(), runFor: runFor?.seconds });
        t.diagnostic(`${ex.file}:${ex.line} ${Date.now() - started} ms`);
        const printed = `stdout: ${res.out}\nstderr: ${res.err}`;
        if (runFor) {
          assert.ok(res.stoppedByUs, `${where}\nended by itself (${res.code}) instead of running on\n${printed}`);
          assert.match(res.out + res.err, runFor.expect, `${where}\n${printed}`);
        } else {
          assert.ok(!res.stoppedByUs, `${where}\ndid not finish within ${LINE_TIMEOUT_MS} ms\n${printed}`);
          assert.equal(res.code, 0, `${where}\nexited ${res.code}\n${printed}`);
        }
        // A send to the laptop ends with each file there, verified (a name taken gets " (1)").
        const sent = /^nondivy send (.+?) --to laptop\s/.exec(ex.text)?.[1]!.split(/\s+/) ?? [];
        assert.equal(readdirSync(join(work.path, 'laptop')).length, received + sent.length, `${where}\nnot every file reached the laptop`);
        received += sent.length;
      }
    });
  }
});
