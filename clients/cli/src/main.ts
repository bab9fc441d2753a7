import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from './command.js';
import { devicesCommand } from './commands/devices.js';
import { discoverCommand } from './commands/discover.js';
import { linkCommand, linksCommand, unlinkCommand } from './commands/federation.js';
import { getCommand } from './commands/get.js';
import { loginCommand } from './commands/login.js';
import { passwdCommand } from './commands/passwd.js';
import { receiveCommand } from './commands/receive.js';
import { searchCommand } from './commands/search.js';
import { sendCommand } from './commands/send.js';
import { startCommand } from './commands/start.js';
import { uploadCommand } from './commands/upload.js';
import { usersCommand } from './commands/users.js';
import { CliError, Interrupted, isInterruption, UsageError } from './errors.js';
import { clearStatus } from './progress.js';

/**
 * `nondivy`: the command-line client of a Nondivy site. This module is the entry point both from
 * source (bin/nondivy.mjs with tsx) and bundled (dist/nondivy.mjs): either way it sits one folder
 * below clients/cli, so the repository root is three levels up.
 */
const COMMANDS: Command[] = [discoverCommand, loginCommand, uploadCommand, searchCommand, getCommand, devicesCommand, sendCommand, receiveCommand, linkCommand, linksCommand, unlinkCommand, passwdCommand, usersCommand, startCommand];

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `nondivy ${version()}: the command-line client of a Nondivy site (LAN file sharing)

Usage: nondivy COMMAND [options]   ("nondivy COMMAND --help" for its options)

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Common options: --server URL, --token T, --device NAME, --json, --help
`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = rest[0] && COMMANDS.find((c) => c.name === rest[0]);
    process.stdout.write(topic ? topic.help() : usage());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command "${name}" (see "nondivy --help")`);

  const interrupt = new AbortController();
  if (!command.ownSignals) {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      // The first signal lets the command clean up (unregister, cancel, delete partial files);
      // a second one does not wait for that.
      if (++signals > 1) process.exit(130);
      interrupt.abort(new Interrupted(signal));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  try {
    return await command.execute(rest, { signal: interrupt.signal, repoRoot, env: process.env });
  } catch (err) {
    if (isInterruption(err, interrupt.signal)) return 130;
    throw err;
  }
}

/** Exits once stdout and stderr have been flushed (they may be pipes). */
function exit(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exit, (err: unknown) => {
  clearStatus();
  if (err instanceof CliError) {
    process.stderr.write(`nondivy: ${err.message}\n`);
    exit(err.exitCode);
  } else if (err instanceof Interrupted) {
    exit(130);
  } else {
    process.stderr.write(`nondivy: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    exit(70);
  }
});
