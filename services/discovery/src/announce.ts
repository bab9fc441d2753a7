import { networkInterfaces } from 'node:os';
import { createRequire } from 'node:module';
import type { Logger } from '@nondivy/log';

const require = createRequire(import.meta.url);

/** What the site announces on the LAN (DNS-SD `_nondivy._tcp.local`, TXT record). */
export interface Announcement {
  siteId: string;
  siteName: string;
  httpPort: number;
  ftpPort: number;
  /** The API base URL to announce; default: http://<first LAN IPv4>:<httpPort>. */
  publicUrl?: string;
  version: string;
}

interface CiaoService {
  advertise(): Promise<void>;
  end(): Promise<void>;
  destroy(): Promise<void>;
}
interface CiaoResponder {
  createService(options: { name: string; type: string; port: number; txt: Record<string, string> }): CiaoService;
  shutdown(): Promise<void>;
}
interface Ciao {
  getResponder(options?: { interface?: string[] }): CiaoResponder;
}

/**
 * The host's LAN interfaces (non-internal, with an address). ciao finds interfaces by parsing
 * `ip -o link show`, which names veth and VLAN interfaces `eth0@if5` and so misses them; naming
 * them explicitly avoids that.
 */
export function lanInterfaces(): string[] {
  return Object.entries(networkInterfaces())
    .filter(([, addrs]) => (addrs ?? []).some((a) => !a.internal))
    .map(([name]) => name);
}

/** The first non-internal IPv4 address of this host (what LAN clients most likely reach). */
export function lanAddress(): string | null {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/**
 * Announces the site with an RFC 6762/6763 responder (`@homebridge/ciao`), which answers the
 * queries of every platform's resolver (Avahi, Apple's mDNSResponder, python-zeroconf). Returns the
 * function that withdraws the announcement (goodbye packets) and stops the responder.
 */
export async function announce(a: Announcement, log: Logger, interfaces: string[] = lanInterfaces()): Promise<() => Promise<void>> {
  const ciao = require('@homebridge/ciao') as Ciao;
  const responder = ciao.getResponder(interfaces.length ? { interface: interfaces } : undefined);
  const host = lanAddress();
  const api = a.publicUrl ?? (host ? `http://${host}:${a.httpPort}` : '');
  const txt: Record<string, string> = { siteId: a.siteId, name: a.siteName, ftp: String(a.ftpPort), version: a.version, path: '/api/v1' };
  if (api) txt.api = api.replace(/\/+$/, '');
  const service = responder.createService({ name: a.siteName, type: 'nondivy', port: a.httpPort, txt });
  await service.advertise();
  log.info({ type: '_nondivy._tcp', name: a.siteName, port: a.httpPort, api: txt.api, interfaces }, 'announcing the site on the LAN');
  return async () => {
    await service.end().catch(() => undefined);
    await service.destroy().catch(() => undefined);
    await responder.shutdown().catch(() => undefined);
  };
}
