import { z } from 'zod';

export const ROLES = ['admin', 'member'] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

export const Username = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9][a-z0-9._-]{1,31}$/, 'usernames are 2-32 characters: letters, digits, . _ -');

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

export const CreateUserRequest = z.strictObject({
  username: Username,
  password: Password,
  role: Role.default('member'),
});
