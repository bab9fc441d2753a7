import { clearStatus, redrawStatus } from './progress.js';

/**
 * Where the CLI writes. With --json, stdout carries only JSON (one document per command, or one
 * line per event) and human notes go to stderr; without it, results and notes go to stdout.
 */
export class Output {
  constructor(readonly json: boolean) {}

  /** A result line for people (ignored with --json). */
  line(text: string): void {
    if (this.json) return;
    write(process.stdout, `${text}\n`);
  }

  /** A progress note ("waiting…"): stdout for people, stderr with --json. */
  note(text: string): void {
    write(this.json ? process.stderr : process.stdout, `${text}\n`);
  }

  /** A warning that does not stop the command. */
  warn(text: string): void {
    write(process.stderr, `nondivy: ${text}\n`);
  }

  /** One JSON document (or one JSON line of an event stream) on stdout, with --json only. */
  data(value: unknown): void {
    if (!this.json) return;
    write(process.stdout, `${JSON.stringify(value)}\n`);
  }
}

/** Writes around the progress bar, so the bar never ends up in the middle of a line. */
function write(stream: NodeJS.WriteStream, text: string) {
  clearStatus();
  stream.write(text);
  redrawStatus();
}
