/**
 * `npm run test:mutation`: StrykerJS over the unit tier, one module at a time (the modules and their
 * tests are listed in infra/mutation-modules.mjs), then the mutation score of each module.
 * `node infra/mutation.mjs http/range ftp/paths` runs only those. Reports: reports/mutation/<module>/.
 * Exits non-zero when a module scores under MIN_SCORE (80 %) or a run fails.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { MUTATION_MODULES } from './mutation-modules.mjs';

const MIN_SCORE = 80;
const names = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(MUTATION_MODULES);
const unknown = names.filter((n) => !(n in MUTATION_MODULES));
if (unknown.length > 0) {
  console.error(`unknown module(s): ${unknown.join(', ')}; known: ${Object.keys(MUTATION_MODULES).join(', ')}`);
  process.exit(2);
}

/** Stryker's score: detected (killed, timed out) over all valid mutants (errors and ignored left out). */
function scoreOf(reportPath) {
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  const count = { detected: 0, survived: 0, noCoverage: 0 };
  for (const file of Object.values(report.files)) {
    for (const m of file.mutants) {
      if (m.status === 'Killed' || m.status === 'Timeout') count.detected++;
      else if (m.status === 'Survived') count.survived++;
      else if (m.status === 'NoCoverage') count.noCoverage++;
    }
  }
  const valid = count.detected + count.survived + count.noCoverage;
  return { ...count, valid, score: valid === 0 ? 100 : (100 * count.detected) / valid };
}

const rows = [];
const t0 = Date.now();
for (const name of names) {
  const started = Date.now();
  console.log(`\n=== ${name} ===`);
  const run = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs'], { stdio: 'inherit', env: { ...process.env, NONDIVY_MUTATION_MODULE: name } });
  const seconds = Math.round((Date.now() - started) / 1000);
  if (run.status !== 0) {
    rows.push({ name, error: `stryker exited ${run.status ?? run.signal}`, seconds });
    continue;
  }
  rows.push({ name, ...scoreOf(`reports/mutation/${name.replace(/[^a-z0-9-]+/gi, '_')}/mutation.json`), seconds });
}

console.log(`\nMutation score per module (minimum ${MIN_SCORE} %), ${Math.round((Date.now() - t0) / 1000)} s in all:`);
let failed = false;
for (const r of rows) {
  if (r.error) {
    failed = true;
    console.log(`  ${r.name.padEnd(28)} ERROR ${r.error}`);
    continue;
  }
  const low = r.score < MIN_SCORE;
  failed ||= low;
  console.log(`  ${r.name.padEnd(28)} ${r.score.toFixed(2).padStart(6)} %  (${r.detected}/${r.valid} detected, ${r.survived} survived, ${r.noCoverage} no coverage; ${r.seconds} s)${low ? '  BELOW MINIMUM' : ''}`);
}
process.exit(failed ? 1 : 0);
