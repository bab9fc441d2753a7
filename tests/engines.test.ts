/**
 * The Node versions package.json's `engines` claims are true of the whole installed tree: every
 * package in package-lock.json whose `engines.node` says otherwise would make `npm ci` warn
 * (EBADENGINE) and may not run there. Checked at the lowest version of each of the root range's
 * branches (e.g. 20.18.1 and 22.0.0) and at Node 24 (the image's), with a small reader of the
 * range forms npm packages use (the `semver` package is not a dependency of this project).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

type Version = [number, number, number];

const cmp = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
const COMPARATOR = /^(>=|<=|>|<|=|\^|~)?v?(\*|x|X|\d+)(?:\.(\*|x|X|\d+))?(?:\.(\*|x|X|\d+))?(?:-[0-9A-Za-z.-]+)?$/;

interface Comparator {
  test(v: Version): boolean;
  /** The lowest version it allows (for `>=`, `^`, `~`, `=` and x-ranges). */
  lower?: Version;
}

/** One comparator of a node-semver range (`>=14.17`, `^20.18.1`, `6.*`, `20`, `<7`…). */
function comparator(token: string): Comparator {
  const m = COMPARATOR.exec(token);
  assert.ok(m, `unsupported engines range form: "${token}"`);
  const op = m[1] ?? '=';
  const parts: number[] = [];
  for (const p of [m[2], m[3], m[4]]) {
    if (p === undefined || /^[*xX]$/.test(p)) break;
    parts.push(Number(p));
  }
  const lower: Version = [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
  /** The first version past a partial one (`20` → 21.0.0, `20.1` → 20.2.0). */
  const next = (n: number): Version | null =>
    n === 0 ? null : n === 1 ? [lower[0] + 1, 0, 0] : n === 2 ? [lower[0], lower[1] + 1, 0] : [lower[0], lower[1], lower[2] + 1];
  const below = (end: Version | null) => (v: Version) => end === null || cmp(v, end) < 0;
  switch (op) {
    case '>=':
      return { test: (v) => cmp(v, lower) >= 0, lower };
    case '>': {
      const end = parts.length === 3 ? null : next(parts.length);
      return { test: (v) => (end ? cmp(v, end) >= 0 : cmp(v, lower) > 0) && parts.length > 0 };
    }
    case '<':
      return { test: (v) => cmp(v, lower) < 0 };
    case '<=':
      return { test: parts.length === 3 ? (v) => cmp(v, lower) <= 0 : below(next(parts.length)) };
    case '^': {
      const end: Version = lower[0] > 0 || parts.length <= 1 ? [lower[0] + 1, 0, 0] : lower[1] > 0 || parts.length === 2 ? [0, lower[1] + 1, 0] : [0, 0, lower[2] + 1];
      return { test: (v) => cmp(v, lower) >= 0 && cmp(v, end) < 0, lower };
    }
    case '~': {
      const end: Version = parts.length >= 2 ? [lower[0], lower[1] + 1, 0] : [lower[0] + 1, 0, 0];
      return { test: (v) => cmp(v, lower) >= 0 && cmp(v, end) < 0, lower };
    }
    default: {
      const end = next(parts.length === 3 ? 3 : parts.length);
      return { test: (v) => cmp(v, lower) >= 0 && below(end)(v), lower };
    }
  }
}

/** A range: `||`-separated branches of space-separated comparators (`>= 8` written apart too). */
function branches(range: string): Comparator[][] {
  return range.split('||').map((branch) => {
    const tokens = branch.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter((t) => t !== '');
    return tokens.length === 0 ? [{ test: () => true, lower: [0, 0, 0] as Version }] : tokens.map(comparator);
  });
}

const satisfies = (v: Version, range: string) => branches(range).some((b) => b.every((c) => c.test(v)));
const show = (v: Version) => v.join('.');
const parse = (s: string): Version => s.replace(/^v/, '').split('.').map(Number) as Version;

/** `engines.node` of a lock entry: the object form, or the old array form (`["node >=0.10.0"]`). */
function nodeRange(engines: unknown): string | undefined {
  if (Array.isArray(engines)) {
    const entry = engines.find((e): e is string => typeof e === 'string' && e.startsWith('node '));
    return entry?.slice(5);
  }
  return (engines as { node?: string } | undefined)?.node;
}

interface LockEntry {
  version?: string;
  dev?: boolean;
  link?: boolean;
  engines?: unknown;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
const claim = pkg.engines.node;

/** The versions the claim must hold at: each branch's lowest, and Node 24 (the image's). */
const probes: Version[] = branches(claim)
  .map((b) => b.map((c) => c.lower ?? ([0, 0, 0] as Version)).reduce((a, c) => (cmp(c, a) > 0 ? c : a)))
  .concat([[24, 0, 0]]);

describe('engines', () => {
  it('the range reader agrees with npm on the forms the lock file uses', () => {
    const cases: [string, string, boolean][] = [
      ['20.11.0', '>=20.11', true], ['20.10.9', '>=20.11', false], ['20.18.1', '>=20.18.1', true],
      ['21.0.0', '20 || >=22', false], ['20.99.0', '20 || >=22', true], ['22.0.0', '18 || 20 || >=22', true],
      ['20.18.1', '^16 || ^18 || >=20', true], ['13.0.0', '>=16 || 14 >=14.17', false], ['14.17.0', '>=16 || 14 >=14.17', true],
      ['7.5.0', '>=6 <7 || >=8', false], ['20.0.0', '6.* || 8.* || >= 10.*', true], ['9.0.0', '6.* || 8.* || >= 10.*', false],
      ['20.0.0', '*', true], ['12.21.0', '^12.22.0 || ^14.17.0 || >=16.0.0', false], ['21.0.0', '^20.18.1 || >=22', false],
      ['20.18.0', '^20.18.1 || >=22', false], ['24.0.0', '^20.18.1 || >=22', true], ['10.0.0', '>= 10.x', true],
    ];
    for (const [v, range, expected] of cases) assert.equal(satisfies(parse(v), range), expected, `${v} in "${range}"`);
    assert.throws(() => satisfies([20, 0, 0], '20.0.0 - 22.0.0'), /unsupported/);
  });

  it('the claim holds for this Node and at the versions it starts from', () => {
    assert.ok(satisfies(parse(process.versions.node), claim), `this Node (${process.versions.node}) satisfies "${claim}"`);
    for (const v of probes) assert.ok(satisfies(v, claim), `${show(v)} satisfies "${claim}"`);
  });

  it('every runtime (non-dev) package of the lock file runs where package.json says the project runs', () => {
    const bad: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '' || entry.dev || entry.link) continue;
      const range = nodeRange(entry.engines);
      if (!range) continue;
      for (const v of probes) if (!satisfies(v, range)) bad.push(`${path}@${entry.version} needs node "${range}" (not ${show(v)})`);
    }
    assert.deepEqual(bad, [], `package.json engines.node is "${claim}"`);
  });

  it('so does every development package (npm ci installs them for the build and the tests)', () => {
    const bad: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '' || !entry.dev || entry.link) continue;
      const range = nodeRange(entry.engines);
      if (!range) continue;
      for (const v of probes) if (!satisfies(v, range)) bad.push(`${path}@${entry.version} needs node "${range}" (not ${show(v)})`);
    }
    assert.deepEqual(bad, [], `package.json engines.node is "${claim}"`);
  });
});
