import { LoginResponse } from '@nondivy/contracts';
import { defineCommand } from '../command.js';
import { saveConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { ask, askHidden, canPrompt } from '../prompt.js';

export const loginCommand = defineCommand({
  name: 'login',
  summary: 'Log in to a site and save the server and token for the other commands.',
  usage: `Usage: nondivy login [USERNAME] [--password P]

  USERNAME        asked on the terminal when not given
  --password P    the password (env NONDIVY_PASSWORD; else asked on the terminal, not echoed)

Saves {server, token, username} in $XDG_CONFIG_HOME/nondivy/config.json (~/.config/nondivy), mode 0600.`,
  examples: [
    'nondivy login alice --server http://192.168.1.20:8080 # asks for the password',
    'NONDIVY_PASSWORD="$PW" nondivy login alice # in a script: the password from the environment',
  ],
  options: { password: { type: 'string' } },
  async run({ values, positionals }, ctx) {
    if (positionals.length > 1) throw new UsageError('login takes one user name');
    const api = await ctx.anonymousApi();
    if (positionals.length === 0 && !canPrompt()) throw new UsageError('login needs a USERNAME (there is no terminal to ask on)');
    const username = positionals[0] ?? (await ask('user name: ', ctx.signal));
    if (!username) throw new UsageError('no user name given');
    const password = values.password ?? ctx.env.NONDIVY_PASSWORD ?? (await askHidden(`password for ${username} at ${api.server}: `));
    const answer = await api.call(LoginResponse, 'POST', '/auth/login', { json: { username, password } });
    const path = await saveConfig({ server: api.server, token: answer.token, username: answer.user.username }, ctx.env);
    ctx.out.data({ server: api.server, user: answer.user, expiresAt: answer.expiresAt, config: path });
    ctx.out.line(`logged in to ${api.server} as ${answer.user.username} (${answer.user.role}) until ${answer.expiresAt}; saved in ${path}`);
  },
});
