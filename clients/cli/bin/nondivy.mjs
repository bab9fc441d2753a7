#!/usr/bin/env node
// The `nondivy` command. Runs the bundle (dist/nondivy.mjs, made by `npm run build`) when there is
// one; otherwise the TypeScript source through tsx (a devDependency of the repository).
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/nondivy.mjs', import.meta.url);
if (existsSync(bundle)) {
  await import(bundle.href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write('nondivy: not built: run "npm run build" in the Nondivy repository (or "npm ci" for tsx)\n');
    process.exit(1);
  }
  register();
  await import(new URL('../src/main.ts', import.meta.url).href);
}
