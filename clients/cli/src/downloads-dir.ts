import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/** The user-dirs.dirs file is a few lines; anything much bigger is not one. */
const MAX_USER_DIRS_BYTES = 64 * 1024;

/**
 * The value of `XDG_DOWNLOAD_DIR` in a user-dirs.dirs text, as xdg-user-dirs writes it:
 * `XDG_DOWNLOAD_DIR="$HOME/Downloads"` or an absolute path in double quotes, `\` escaping the next
 * character. Anything else (a relative path, other variables) is not valid there and is ignored;
 * a directory set to the home folder itself means "disabled". Read line by line, no patterns.
 */
export function downloadDirFrom(text: string, home: string): string | undefined {
  let found: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('XDG_DOWNLOAD_DIR=')) continue;
    let value = line.slice('XDG_DOWNLOAD_DIR='.length);
    if (value.length < 2 || !value.startsWith('"') || !value.endsWith('"')) continue;
    value = value.slice(1, -1);
    let unescaped = '';
    for (let i = 0; i < value.length; i++) unescaped += value[i] === '\\' && i + 1 < value.length ? value[++i] : value[i];
    let path: string | undefined;
    if (unescaped === '$HOME' || unescaped.startsWith('$HOME/')) path = join(home, unescaped.slice('$HOME'.length));
    else if (isAbsolute(unescaped)) path = unescaped;
    if (path === undefined) continue;
    // The last assignment wins, as when the shell sources the file.
    found = resolve(path) === resolve(home) ? undefined : path;
  }
  return found;
}

/**
 * Where `receive` puts files when no --dir is given: the desktop's Downloads folder
 * (XDG_DOWNLOAD_DIR of `$XDG_CONFIG_HOME/user-dirs.dirs`, `~/.config/user-dirs.dirs` without it),
 * else `~/Downloads`.
 */
export async function defaultDownloadsDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const home = homedir();
  const xdg = env.XDG_CONFIG_HOME;
  const file = join(xdg && isAbsolute(xdg) ? xdg : join(home, '.config'), 'user-dirs.dirs');
  try {
    const text = await readFile(file, 'utf8');
    if (text.length <= MAX_USER_DIRS_BYTES) {
      const dir = downloadDirFrom(text, home);
      if (dir) return dir;
    }
  } catch {
    // No such file (most servers and non-Linux systems): the plain default.
  }
  return join(home, 'Downloads');
}
