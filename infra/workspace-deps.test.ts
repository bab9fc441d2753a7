/**
 * Every workspace declares what it imports and imports what it declares: a package imported from
 * src/ but missing from the workspace's package.json works only by the accident of hoisting (and
 * breaks a build of that workspace alone); a runtime dependency nothing imports is dead weight in
 * every install and image.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importSpecifiers, packageOf } from './imports.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Runtime dependencies used without an import in src/ ("workspace → package": why). Empty today:
 * ftp-srv is loaded with require(), which the scanner reads.
 */
const USED_WITHOUT_IMPORT = new Map<string, string>([]);

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

interface Workspace {
  dir: string;
  manifest: Manifest;
  /** Package → the files (relative to the root) that import it. */
  imports: Map<string, string[]>;
  /** The same, without the unit tests beside the code. */
  runtimeImports: Set<string>;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

function workspaces(): Workspace[] {
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  const dirs = root.workspaces.flatMap((pattern) => {
    if (!pattern.endsWith('/*')) return [pattern];
    const parent = pattern.slice(0, -2);
    return readdirSync(join(ROOT, parent), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${parent}/${e.name}`);
  });
  return dirs
    .filter((dir) => statSync(join(ROOT, dir, 'package.json'), { throwIfNoEntry: false })?.isFile())
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as Manifest;
      const imports = new Map<string, string[]>();
      const runtimeImports = new Set<string>();
      const src = join(ROOT, dir, 'src');
      for (const file of statSync(src, { throwIfNoEntry: false })?.isDirectory() ? tsFiles(src) : []) {
        for (const specifier of importSpecifiers(readFileSync(file, 'utf8'))) {
          const pkg = packageOf(specifier);
          if (!pkg || pkg === manifest.name) continue;
          imports.set(pkg, [...(imports.get(pkg) ?? []), relative(ROOT, file)]);
          if (!file.endsWith('.test.ts')) runtimeImports.add(pkg);
        }
      }
      return { dir, manifest, imports, runtimeImports };
    });
}

const all = workspaces();

describe('workspace dependencies', () => {
  it('finds every workspace and what its code imports', () => {
    const names = all.map((w) => w.dir);
    for (const dir of ['libs/errors', 'libs/federation', 'services/gateway', 'services/ftp', 'clients/cli']) assert.ok(names.includes(dir), dir);
    const gateway = all.find((w) => w.dir === 'services/gateway')!;
    assert.ok(gateway.imports.has('fastify') && gateway.imports.has('@nondivy/state'));
  });

  it('declares every package a workspace imports', () => {
    const missing: string[] = [];
    for (const w of all) {
      const declared = { ...w.manifest.dependencies, ...w.manifest.devDependencies, ...w.manifest.peerDependencies };
      for (const [pkg, files] of w.imports) {
        if (!(pkg in declared)) missing.push(`${w.dir} imports ${pkg} (${files.join(', ')}) without declaring it`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('imports every runtime dependency it declares', () => {
    const unused: string[] = [];
    for (const w of all) {
      for (const pkg of Object.keys(w.manifest.dependencies ?? {})) {
        if (!w.runtimeImports.has(pkg) && !USED_WITHOUT_IMPORT.has(`${w.dir} → ${pkg}`)) unused.push(`${w.dir} declares ${pkg} and never imports it`);
      }
    }
    assert.deepEqual(unused, []);
  });

  it('keeps the allow-list true: each entry is a declared dependency that is indeed not imported', () => {
    for (const key of USED_WITHOUT_IMPORT.keys()) {
      const [dir, pkg] = key.split(' → ') as [string, string];
      const w = all.find((x) => x.dir === dir);
      assert.ok(w && pkg in (w.manifest.dependencies ?? {}), `${key}: not a declared dependency`);
      assert.ok(!w.runtimeImports.has(pkg), `${key}: imported after all, drop it from the list`);
    }
  });
});
