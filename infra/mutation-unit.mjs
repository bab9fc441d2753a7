/**
 * Runs the given unit test files in this one process (as infra/unit-tests.mjs does for the whole
 * tier): the command StrykerJS runs once per mutant, so it starts Node and tsx once, not per file.
 * Usage: `node --import tsx infra/mutation-unit.mjs <file.test.ts>...`; exits non-zero when a test fails.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node --import tsx infra/mutation-unit.mjs <file.test.ts>...');
  process.exit(2);
}
for (const file of files) await import(pathToFileURL(resolve(file)).href);
