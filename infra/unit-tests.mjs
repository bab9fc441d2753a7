/**
 * `npm run test:unit`: the unit tier — the `*.test.ts` files beside the code of every workspace
 * (libs/*, services/*, clients/*, under src/) and the repository checks in infra/. They start no
 * S3 server and no Nondivy process; the gateway's `app.inject` tests start one `redis-server` of their
 * own (about 50 ms; `redis-server` must be installed), so the tier runs in seconds; tests/ holds the
 * black-box tier.
 *
 * Run as `node --import tsx infra/unit-tests.mjs`: the files are imported into this one process (node's
 * test runner runs what they register when the imports are done) rather than one process per file,
 * which would spend most of the tier's time starting Node and tsx again for each.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function testFiles(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' ? [] : testFiles(path);
    return e.name.endsWith('.test.ts') ? [path] : [];
  });
}

const dirs = ['libs', 'services', 'clients'].flatMap((group) =>
  readdirSync(join(ROOT, group), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(ROOT, group, e.name, 'src')),
);
const files = [...dirs, join(ROOT, 'infra')].flatMap(testFiles).map((f) => relative(ROOT, f)).sort();
if (files.length === 0) {
  console.error('no unit tests found');
  process.exit(1);
}

for (const file of files) await import(pathToFileURL(join(ROOT, file)).href);
