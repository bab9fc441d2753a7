import { CliError } from './errors.js';
import { askHidden, canPrompt } from './prompt.js';

/** Passwords are at most 200 characters: a few of them per line never need more than this. */
const MAX_STDIN_BYTES = 16 * 1024;

/** A password the command needs, and whether a terminal user types it twice (a new one). */
export interface SecretQuestion {
  /** What it is, for the prompt and for errors ("current password"). */
  label: string;
  confirm?: boolean;
}

/** Reads stdin to its end (at most `MAX_STDIN_BYTES`) and returns its lines without line ends. */
async function stdinLines(): Promise<string[]> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_STDIN_BYTES) throw new CliError(`more than ${MAX_STDIN_BYTES / 1024} KiB on stdin: expected one password per line`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/**
 * The passwords a command needs, in order. From stdin, one per line, when stdin is not a terminal
 * or `fromStdin` is set (scripts: `printf '%s\n%s\n' "$OLD" "$NEW" | nondivy passwd`); otherwise
 * asked on the terminal without echo, new ones twice so that a typo does not lock anyone out.
 */
export async function readSecrets(questions: readonly SecretQuestion[], fromStdin: boolean): Promise<string[]> {
  if (fromStdin || !canPrompt()) {
    const lines = await stdinLines();
    const answers = questions.map((_, i) => lines[i] ?? '');
    const missing = questions.findIndex((_, i) => answers[i] === '');
    if (missing >= 0) {
      const wanted = questions.map((q) => q.label).join(', then ');
      throw new CliError(`no ${questions[missing]!.label} on line ${missing + 1} of stdin (expected one per line: ${wanted})`);
    }
    return answers;
  }
  const answers: string[] = [];
  for (const q of questions) {
    const value = await askHidden(`${q.label}: `);
    if (value === '') throw new CliError(`no ${q.label} given`);
    if (q.confirm && (await askHidden(`${q.label} again: `)) !== value) throw new CliError(`the two ${q.label}s differ: nothing changed`);
    answers.push(value);
  }
  return answers;
}
