import { z } from 'zod';

export const ROLES = ['admin', 'member'] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

export const Username = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9][a-z0-9._-]{1,31}$/, 'usernames are 2-32 characters: letters, digits, . _ -');

/**
 * Names that mean "nobody logged in" elsewhere: FTP's `anonymous` login, and `guest`, the owner shown
 * for devices registered without a login. An account by these names would be confused with them.
 */
export const RESERVED_USERNAMES = ['anonymous', 'guest'] as const;

/** A name for a new account: a valid username that is not reserved. */
export const NewUsername = Username.refine((n) => !(RESERVED_USERNAMES as readonly string[]).includes(n), 'that name is reserved');

/** Every password set through the API: at account creation, by an admin's reset, by its owner's change. */
export const Password = z.string().min(8, 'at least 8 characters').max(200);

export const User = z.object({
  username: z.string(),
  role: Role,
  createdAt: z.iso.datetime(),
});
export type User = z.infer<typeof User>;

export const LoginRequest = z.strictObject({
  username: z.string().max(100),
  password: z.string().max(200),
});

export const LoginResponse = z.object({
  token: z.string(),
  expiresAt: z.iso.datetime(),
  user: User,
});

/**
 * The answer to a cookie login (POST /auth/session), for the web app: the token itself is only in
 * the HttpOnly cookie, never in a body that scripts could read.
 */
export const SessionResponse = z.object({
  expiresAt: z.iso.datetime(),
  user: User,
});
export type SessionResponse = z.infer<typeof SessionResponse>;

/** GET /auth/session: who this browser is logged in as, or null for a guest (never a 401, so that asking is not an error). */
export const SessionState = z.object({ user: User.nullable() });
export type SessionState = z.infer<typeof SessionState>;

export const CreateUserRequest = z.strictObject({
  username: NewUsername,
  password: Password,
  role: Role.default('member'),
});

export const UsernameParams = z.object({ username: Username });

export const UpdateUserRequest = z
  .strictObject({
    role: Role.optional(),
    password: Password.optional().describe('A new password: ends every session of the account'),
  })
  .refine((b) => b.role !== undefined || b.password !== undefined, 'nothing to change: send role and/or password')
  .describe('Set the role and/or reset the password. Demoting the last admin is refused (409).');

export const ChangePasswordRequest = z
  .strictObject({
    current: z.string().max(200).describe('The password now; a wrong one counts as a failed login from this address'),
    password: Password,
  })
  .describe('Change one\'s own password: this session goes on, every other session of the account ends.');
