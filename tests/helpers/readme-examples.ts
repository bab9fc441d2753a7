import { readFileSync } from 'node:fs';

/**
 * The marker that keeps a ```sh block of a README out of `readme-examples.test.ts`: an HTML comment
 * (invisible once rendered) on the last non-blank line before the block. Each of its lines still
 * needs a reason in the test's table.
 */
export const SKIP_MARKER = '<!-- examples: skip -->';

/** One command line of a README's ```sh block, `\` continuations joined. */
export interface Example {
  /** The README's path, relative to the repository. */
  file: string;
  /** 1-based line in the README where the command starts. */
  line: number;
  /** Index of its block within the file (0-based), so lines of one block share a working folder. */
  block: number;
  /** The command as written (a trailing `# comment` kept: it is a shell comment). */
  text: string;
  /** Its block is marked with `SKIP_MARKER`. */
  markedSkip: boolean;
}

/**
 * Every command line of the ```sh blocks of `file` (read relative to `root`). Lines that hold only a
 * comment, and blank lines, are left out: they are no commands. Other fences (```yaml, plain ```)
 * are not shell and are ignored.
 */
export function extractExamples(root: string, file: string): Example[] {
  const lines = readFileSync(`${root}/${file}`, 'utf8').split('\n');
  const examples: Example[] = [];
  let block = -1;
  let previous = '';
  for (let i = 0; i < lines.length; i++) {
    const fence = lines[i]!.trim();
    if (!fence.startsWith('```')) {
      if (fence !== '') previous = fence;
      continue;
    }
    const isShell = fence === '```sh';
    const markedSkip = previous === SKIP_MARKER;
    if (isShell) block++;
    // Walk to the closing fence, collecting the block's commands when it is shell.
    let j = i + 1;
    let pending: { line: number; text: string } | null = null;
    for (; j < lines.length && lines[j]!.trim() !== '```'; j++) {
      if (!isShell) continue;
      const raw = lines[j]!;
      const text: string = pending ? `${pending.text} ${raw.trim()}` : raw.trim();
      const start: number = pending ? pending.line : j + 1;
      if (text.endsWith('\\')) {
        pending = { line: start, text: text.slice(0, -1).trimEnd() };
        continue;
      }
      pending = null;
      if (text === '' || text.startsWith('#')) continue;
      examples.push({ file, line: start, block, text, markedSkip });
    }
    if (pending) throw new Error(`${file}:${pending.line}: a \\ continuation runs into the end of its block`);
    i = j;
    previous = '';
  }
  return examples;
}
