import { defineCommand } from '../command.js';
import { UsageError } from '../errors.js';
import { readSecrets } from '../secrets.js';

/** `nondivy passwd`: the logged-in user changes their own password (PUT /me/password). */
export const passwdCommand = defineCommand({
  name: 'passwd',
  summary: 'Change your own password (your other sessions are logged out).',
  usage: `Usage: nondivy passwd [--password-stdin]

  --password-stdin   read the current password and the new one from stdin, one per line
                     (also what happens when stdin is not a terminal); else both are asked on
                     the terminal, not echoed, the new one twice

This login stays valid; every other session of the account (other devices, other terminals) ends.`,
  examples: [
    'nondivy passwd # asks for the current password, then the new one twice',
    'printf \'%s\\n%s\\n\' "$OLD" "$NEW" | nondivy passwd --password-stdin # in a script',
  ],
  options: { 'password-stdin': { type: 'boolean' } },
  async run({ values, positionals }, ctx) {
    if (positionals.length > 0) throw new UsageError(`passwd takes no argument (got ${positionals[0]}); it changes the logged-in user's password`);
    const api = await ctx.api({ login: 'required' });
    const [current, password] = await readSecrets([{ label: 'current password' }, { label: 'new password', confirm: true }], values['password-stdin'] === true);
    await api.send('PUT', '/me/password', { json: { current, password } });
    ctx.out.data({ changed: true });
    ctx.out.line('password changed; your other sessions are logged out');
  },
});
