import { ROLES, User } from '@nondivy/contracts';
import { z } from 'zod';
import { choiceOption } from '../args.js';
import { defineCommand } from '../command.js';
import type { Context } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { formatAgo, printable, table } from '../format.js';
import { canPrompt, confirm } from '../prompt.js';
import { readSecrets } from '../secrets.js';

const UserList = z.object({ users: z.array(User) });
const SUBCOMMANDS = ['list', 'add', 'role', 'reset', 'delete'] as const;

/** The account path segment: a name is the user's text, so it is escaped, never spliced. */
const userPath = (name: string) => `/users/${encodeURIComponent(name)}`;

/** Exactly `n` arguments after the subcommand, else a usage error showing the right form. */
function expectArgs(args: string[], n: number, form: string): string[] {
  if (args.length !== n) throw new UsageError(`usage: nondivy users ${form}`);
  return args;
}

async function list(ctx: Context) {
  const api = await ctx.api({ login: 'required' });
  const { users } = await api.call(UserList, 'GET', '/users');
  if (ctx.json) return ctx.out.data({ users });
  ctx.out.line(table(['NAME', 'ROLE', 'CREATED'], users.map((u) => [u.username, u.role, formatAgo(u.createdAt)])));
}

/**
 * `nondivy users`: account management for admins over `/users` — list, add, change a role, reset
 * a password, delete. Passwords come from the terminal (not echoed, twice) or from stdin lines.
 */
export const usersCommand = defineCommand({
  name: 'users',
  summary: 'Manage the accounts of this site (admins): list, add, role, reset, delete.',
  usage: `Usage: nondivy users                              list the accounts
       nondivy users add NAME [--role member|admin]  create an account (password asked, or from stdin)
       nondivy users role NAME member|admin         change an account's role
       nondivy users reset NAME                     set a new password (its sessions are logged out)
       nondivy users delete NAME [--yes]            delete an account (what it uploaded stays)

  --role R           the new account's role (default member)
  --password-stdin   read the password from stdin's first line (also when stdin is not a terminal)
  --yes              delete without asking (needed when there is no terminal to ask on)

The site refuses to demote or delete its last admin.`,
  examples: [
    'nondivy users # the accounts, their roles and ages',
    'nondivy users add bob # asks for bob\'s password twice',
    'echo "$PW" | nondivy users add carol --role admin --password-stdin',
    'nondivy users role bob admin',
    'nondivy users reset bob # e.g. bob forgot his password',
    'nondivy users delete bob --yes',
  ],
  options: {
    role: { type: 'string' },
    'password-stdin': { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
  },
  async run({ values, positionals }, ctx) {
    const [sub = 'list', ...args] = positionals;
    if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown users command "${printable(sub)}" (one of: ${SUBCOMMANDS.join(', ')})`);
    if (values.role !== undefined && sub !== 'add') throw new UsageError('--role goes with "users add" (to change a role: nondivy users role NAME ROLE)');
    if (values.yes && sub !== 'delete') throw new UsageError('--yes goes with "users delete"');
    const fromStdin = values['password-stdin'] === true;
    if (fromStdin && sub !== 'add' && sub !== 'reset') throw new UsageError('--password-stdin goes with "users add" and "users reset"');

    switch (sub) {
      case 'list':
        expectArgs(args, 0, '[list]');
        return list(ctx);
      case 'add': {
        const [username] = expectArgs(args, 1, 'add NAME [--role member|admin]');
        const role = choiceOption('role', values.role, ROLES) ?? 'member';
        const api = await ctx.api({ login: 'required' });
        const [password] = await readSecrets([{ label: `password for ${username}`, confirm: true }], fromStdin);
        const user = await api.call(User, 'POST', '/users', { json: { username, password, role } });
        ctx.out.data(user);
        ctx.out.line(`created ${printable(user.username)} (${user.role}); they log in with: nondivy login ${printable(user.username)}`);
        return;
      }
      case 'role': {
        const [username, raw] = expectArgs(args, 2, 'role NAME member|admin');
        if (!(ROLES as readonly string[]).includes(raw!)) throw new UsageError(`the role must be one of: ${ROLES.join(', ')}`);
        const api = await ctx.api({ login: 'required' });
        const user = await api.call(User, 'PATCH', userPath(username!), { json: { role: raw } });
        ctx.out.data(user);
        ctx.out.line(`${printable(user.username)} is now ${user.role === 'admin' ? 'an admin' : 'a member'}`);
        return;
      }
      case 'reset': {
        const [username] = expectArgs(args, 1, 'reset NAME');
        const api = await ctx.api({ login: 'required' });
        const [password] = await readSecrets([{ label: `new password for ${username}`, confirm: true }], fromStdin);
        const user = await api.call(User, 'PATCH', userPath(username!), { json: { password } });
        ctx.out.data(user);
        ctx.out.line(`new password set for ${printable(user.username)}; their sessions are logged out`);
        return;
      }
      case 'delete': {
        const [username] = expectArgs(args, 1, 'delete NAME [--yes]');
        const api = await ctx.api({ login: 'required' });
        if (!values.yes) {
          if (!canPrompt()) throw new UsageError(`deleting ${username} needs --yes (there is no terminal to confirm on)`);
          if (!(await confirm(`Delete the account ${printable(username!)}? Its sessions and devices end; its uploads stay.`, ctx.signal))) {
            throw new CliError(`${printable(username!)} not deleted`);
          }
        }
        await api.send('DELETE', userPath(username!));
        ctx.out.data({ deleted: username });
        ctx.out.line(`deleted ${printable(username!)}`);
        return;
      }
    }
  },
});
