import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { CliError, UsageError } from './errors.js';

/** What `nondivy login` saves: the site, its token and who it belongs to. */
export const SavedConfig = z.object({
  server: z.string(),
  token: z.string(),
  username: z.string(),
});
export type SavedConfig = z.infer<typeof SavedConfig>;

/** `$XDG_CONFIG_HOME/nondivy/config.json`, `~/.config/nondivy/config.json` without it. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.config');
  return join(base, 'nondivy', 'config.json');
}

/** The saved configuration, or null when there is none. A damaged file is an error naming it. */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<SavedConfig | null> {
  const path = configPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON: fix or delete it, then log in again`);
  }
  const result = SavedConfig.safeParse(parsed);
  if (!result.success) throw new CliError(`${path} is not a nondivy configuration: fix or delete it, then log in again`);
  return result.data;
}

/** Saves the configuration readable by its owner only (0600), replacing the old file atomically. */
export async function saveConfig(config: SavedConfig, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = configPath(env);
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw new CliError(`cannot save ${path}: ${(err as Error).message}`);
  }
  return path;
}

/**
 * A server address as the user may type it (`10.0.0.5:8080`, `http://nas.local:8080/`) made into the
 * base URL every API path is appended to: scheme added when missing, no trailing slash, no `/api/v1`.
 */
export function normaliseServer(raw: string): string {
  const text = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`not a server address: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the server address must be http:// or https:// (got ${raw})`);
  if (url.username || url.password) throw new UsageError('the server address must not contain a user name or password');
  url.search = '';
  url.hash = '';
  url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return url.href.replace(/\/+$/, '');
}
