/**
 * StrykerJS over the unit tier, one module at a time (see infra/mutation-modules.mjs and
 * infra/mutation.mjs, which runs this configuration once per module with NONDIVY_MUTATION_MODULE
 * set). The command runner starts one process per mutant running only the module's own tests.
 */
import { MUTATION_MODULES } from './infra/mutation-modules.mjs';

const name = process.env.NONDIVY_MUTATION_MODULE;
const chosen = name ? MUTATION_MODULES[name] : undefined;
if (name && !chosen) throw new Error(`unknown mutation module ${name}; known: ${Object.keys(MUTATION_MODULES).join(', ')}`);
const modules = chosen ? [chosen] : Object.values(MUTATION_MODULES);
const out = `reports/mutation/${name ? name.replace(/[^a-z0-9-]+/gi, '_') : 'all'}`;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'command',
  commandRunner: { command: `node --import tsx --test-reporter=dot infra/mutation-unit.mjs ${modules.flatMap((m) => m.tests).join(' ')}` },
  mutate: modules.flatMap((m) => m.mutate),
  // The command runner runs every test for every mutant: there is no coverage to analyse.
  coverageAnalysis: 'off',
  concurrency: 2,
  timeoutMS: 10_000,
  reporters: ['clear-text', 'html', 'json'],
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: true },
  htmlReporter: { fileName: `${out}/index.html` },
  jsonReporter: { fileName: `${out}/mutation.json` },
  tempDirName: 'reports/.stryker-tmp',
  // The sandbox needs the workspaces' sources and the repository's configuration, not the black-box tier.
  ignorePatterns: ['/tests', '/bench', '/clients', '/dist', '/reports', '/data', '/backups'],
  cleanTempDir: 'always',
  logLevel: 'warn',
};
