import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * Raised when the environment is invalid. `message` names every bad variable at once, so an operator
 * fixes the whole configuration in one go instead of one restart per mistake.
 */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Resolves `NAME_FILE` indirections (Docker/Compose secrets): when `NAME_FILE` is set, the variable's
 * value is the content of that file, without its trailing newline. Setting both is an error.
 */
function resolveFileVariables(names: string[], env: NodeJS.ProcessEnv, problems: string[]) {
  const out: Record<string, string | undefined> = {};
  for (const name of names) {
    const file = env[`${name}_FILE`];
    if (file !== undefined && file !== '') {
      if (env[name] !== undefined && env[name] !== '') {
        problems.push(`${name} and ${name}_FILE are both set; set only one`);
        continue;
      }
      try {
        out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        problems.push(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    } else {
      // Empty strings count as unset: Compose passes `NAME=` for variables left blank in .env.
      out[name] = env[name] === '' ? undefined : env[name];
    }
  }
  return out;
}

/**
 * Parses the environment variables named by `schema`'s keys; `crossCheck` adds rules that involve
 * several variables. Every problem is collected and thrown together as one ConfigError.
 */
export function parseEnv<S extends z.ZodObject>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
  crossCheck?: (raw: Record<string, string | undefined>) => string[],
): z.infer<S> {
  const problems: string[] = [];
  const raw = resolveFileVariables(Object.keys(schema.shape), env, problems);
  if (crossCheck) problems.push(...crossCheck(raw));
  const result = schema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = issue.path.join('.') || '(environment)';
      const shown = typeof raw[name] === 'string' && !/SECRET|PASSWORD|KEY|TOKEN/.test(name) ? ` (got "${raw[name]}")` : '';
      problems.push(`${name}: ${issue.message}${shown}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return (result as { data: z.infer<S> }).data;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** A byte size: `1048576`, `512MiB`, `10GB`, `4 GiB`. */
export const byteSize = z.string().transform((value, ctx) => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a size such as 1048576, 512MiB or 10GB' });
    return z.NEVER;
  }
  return Math.floor(Number(m[1]) * unit);
});

/** `1`/`true`/`yes`/`on` and `0`/`false`/`no`/`off`. */
export const flag = z
  .string()
  .toLowerCase()
  .pipe(z.enum(['1', 'true', 'yes', 'on', '0', 'false', 'no', 'off'], { message: 'expected 1 or 0 (true/false)' }))
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));

export const port = z.coerce.number().int().min(0).max(65535);
export const positiveInt = z.coerce.number().int().positive();

/** `30000-30049`: an inclusive range of TCP ports. */
export const portRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'expected FIRST-LAST, e.g. 30000-30049')
  .transform((v) => v.split('-').map(Number) as [number, number])
  .refine(([a, b]) => a >= 1024 && b <= 65535 && a <= b, 'expected 1024 <= FIRST <= LAST <= 65535');
