import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, unauthorized } from '@nondivy/errors';
import type { RedisDeviceStore, StoredDevice } from '@nondivy/state';
import type { FastifyRequest } from 'fastify';

/**
 * Device tokens, `<device id>.<secret>`: made and checked here only, so their format and the fact
 * that only the secret's hash is stored live in one place.
 */

const hashToken = (secret: string) => createHash('sha256').update(secret).digest();

/** A new device's id, the token given once to it, and the hash kept in its presence record. */
export function issueDeviceToken(): { id: string; token: string; tokenHash: string } {
  const id = randomBytes(12).toString('base64url');
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `${id}.${secret}`, tokenHash: hashToken(secret).toString('base64url') };
}

/**
 * The device a request comes from, by its `X-Device-Token` (`<device id>.<secret>`), or null when
 * none is sent. A token that is sent but wrong is a 401, never silently "no device".
 */
export async function deviceFromRequest(devices: RedisDeviceStore, req: FastifyRequest): Promise<StoredDevice | null> {
  const header = req.headers['x-device-token'];
  if (header === undefined) return null;
  const m = typeof header === 'string' ? /^([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{20,100})$/.exec(header.trim()) : null;
  if (!m) throw unauthorized('Malformed X-Device-Token');
  const device = await devices.get(m[1]!);
  if (!device) throw new AppError('unauthorized', 'Unknown or expired device: register it again');
  const expected = Buffer.from(device.tokenHash, 'base64url');
  const given = hashToken(m[2]!);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw unauthorized('Wrong device token');
  return device;
}
