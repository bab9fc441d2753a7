import { COMMON_HELP, parseCommandArgs, type OptionSpecs, type Parsed } from './args.js';
import { Context } from './context.js';

export interface Runtime {
  /** Aborted with an `Interrupted` on SIGINT/SIGTERM (unless the command handles signals itself). */
  signal: AbortSignal;
  repoRoot: string;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  name: string;
  /** One line for `nondivy --help`. */
  summary: string;
  /** Whether the command deals with SIGINT/SIGTERM itself (`start` forwards them). */
  ownSignals?: boolean;
  help(): string;
  /** Runs the command; resolves to the exit status. */
  execute(argv: string[], runtime: Runtime): Promise<number>;
}

export interface CommandDefinition<O extends OptionSpecs> {
  name: string;
  summary: string;
  /** Usage lines and the command's own options, shown by --help above the common options. */
  usage: string;
  /** Command lines a new user can copy, each with what it does after a "#": --help ends with them. */
  examples: readonly string[];
  options: O;
  ownSignals?: boolean;
  /** Resolves to the exit status (undefined = 0); failures throw. */
  run(args: Parsed<O>, ctx: Context): Promise<number | void>;
}

/** "Examples:" and the lines, their "#" comments aligned. */
function formatExamples(examples: readonly string[]): string {
  const split = examples.map((e) => {
    const i = e.indexOf(' # ');
    return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 3)];
  });
  // Comments line up, except after a command too long for that to stay readable.
  const width = Math.max(0, ...split.filter(([cmd, note]) => note && cmd!.length <= 48).map(([cmd]) => cmd!.length));
  return `${examples.length === 1 ? 'Example' : 'Examples'}:\n${split.map(([cmd, note]) => `  ${note ? `${cmd!.padEnd(width)}   # ${note}` : cmd}`).join('\n')}`;
}

export function defineCommand<O extends OptionSpecs>(def: CommandDefinition<O>): Command {
  const help = () => `${def.summary}\n\n${def.usage.trim()}\n\n${COMMON_HELP}\n\n${formatExamples(def.examples)}\n`;
  return {
    name: def.name,
    summary: def.summary,
    ownSignals: def.ownSignals,
    help,
    async execute(argv, runtime) {
      const args = parseCommandArgs(def.name, argv, def.options);
      if (args.values.help) {
        process.stdout.write(help());
        return 0;
      }
      const ctx = new Context(args.values, runtime.signal, runtime.repoRoot, runtime.env);
      return (await def.run(args, ctx)) ?? 0;
    },
  };
}
