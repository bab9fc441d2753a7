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
  options: O;
  ownSignals?: boolean;
  /** Resolves to the exit status (undefined = 0); failures throw. */
  run(args: Parsed<O>, ctx: Context): Promise<number | void>;
}

export function defineCommand<O extends OptionSpecs>(def: CommandDefinition<O>): Command {
  const help = () => `${def.summary}\n\n${def.usage.trim()}\n\n${COMMON_HELP}\n`;
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
