import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defineCommand } from '../command.js';
import { CliError, UsageError } from '../errors.js';

/** Runs a child with the terminal; resolves to its exit status (128 + n when killed by signal n). */
function run(command: string, args: string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: 'inherit' });
    const relay = (signal: NodeJS.Signals) => {
      // Ctrl-C on a terminal reaches the whole foreground process group, the child included:
      // forwarding it as well would be a second SIGINT. A SIGINT sent to this process alone
      // (no terminal) and SIGTERM are passed on.
      if (signal === 'SIGINT' && process.stdin.isTTY) return;
      child.kill(signal);
    };
    const onInt = () => relay('SIGINT');
    const onTerm = () => relay('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    child.once('error', (err) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      reject(new CliError(`cannot run ${command}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      if (signal) resolve(128 + ((
        { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Partial<Record<NodeJS.Signals, number>>
      )[signal] ?? 0));
      else resolve(code ?? 1);
    });
  });
}

export const startCommand = defineCommand({
  name: 'start',
  summary: 'Run a Nondivy site here (standalone mode: every service in one process).',
  usage: `Usage: nondivy start

Runs dist/standalone.mjs of the repository this CLI belongs to (building it first when missing),
with the NONDIVY_* settings of the environment (see the repository's README). Stops on Ctrl-C.`,
  examples: [
    'nondivy start # a site here, at http://<this host>:8080',
    'NONDIVY_SITE_NAME=Hilltop NONDIVY_HTTP_PORT=9090 nondivy start',
  ],
  options: {},
  ownSignals: true,
  async run({ positionals }, ctx) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument: ${positionals[0]}`);
    const root = ctx.repoRoot;
    const standalone = join(root, 'dist', 'standalone.mjs');
    if (!existsSync(standalone)) {
      const build = join(root, 'infra', 'build.mjs');
      if (!existsSync(build)) throw new CliError(`no Nondivy server next to this CLI (looked for ${standalone}): run "nondivy start" from a clone of the repository`);
      ctx.out.note('building the server (node infra/build.mjs)…');
      const code = await run(process.execPath, [build], root);
      if (code !== 0) throw new CliError(`the build failed (exit status ${code})`, code);
    }
    return run(process.execPath, ['--enable-source-maps', standalone], root);
  },
});
