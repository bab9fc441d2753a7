import { createInterface } from 'node:readline/promises';
import { CliError, Interrupted } from './errors.js';
import { clearStatus, redrawStatus } from './progress.js';

/** Whether questions can be asked (stdin is a terminal). */
export function canPrompt(): boolean {
  return process.stdin.isTTY === true;
}

/** Asks a question on the terminal (answer typed on stdin, question on stderr). */
export async function ask(question: string, signal?: AbortSignal): Promise<string> {
  if (!canPrompt()) throw new CliError('cannot ask: stdin is not a terminal');
  clearStatus();
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return (await rl.question(question, { signal })).trim();
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw err;
  } finally {
    rl.close();
    redrawStatus();
  }
}

/** A yes/no question; only "y"/"yes" is yes. */
export async function confirm(question: string, signal?: AbortSignal): Promise<boolean> {
  return /^y(es)?$/i.test(await ask(`${question} [y/N] `, signal));
}

/** Reads a secret from the terminal without echoing it. Ctrl-C interrupts, Ctrl-D ends the input. */
export function askHidden(question: string): Promise<string> {
  if (!canPrompt()) return Promise.reject(new CliError('cannot ask for the password: stdin is not a terminal (use --password or NONDIVY_PASSWORD)'));
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const done = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (data: string) => {
      for (const ch of data) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new Interrupted('SIGINT'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.setEncoding('utf8');
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}
