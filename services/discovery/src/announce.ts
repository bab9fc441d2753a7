import { networkInterfaces } from 'node:os';
import { createRequire } from 'node:module';
import type { Logger } from '@nondivy/log';
import { announceAddress, chooseAnnounceInterfaces, type InterfaceChoice } from './interfaces.js';

const require = createRequire(import.meta.url);

/** What the site announces on the LAN (DNS-SD `_nondivy._tcp.local`, TXT record). */
export interface Announcement {
  siteId: string;
  siteName: string;
  httpPort: number;
  ftpPort: number;
  /** The API base URL to announce; default: http://<first IPv4 of the announced interfaces>:<httpPort>. */
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
 * The interfaces to announce on (see chooseAnnounceInterfaces), named explicitly to ciao: it would
 * otherwise take every interface, and it finds interfaces by parsing `ip -o link show`, which names
 * veth and VLAN interfaces `eth0@if5` and so misses them.
 */
export function lanInterfaces(explicit?: readonly string[]): InterfaceChoice {
  return chooseAnnounceInterfaces(networkInterfaces(), explicit);
}

/** The first IPv4 address of the announced interfaces (what LAN clients most likely reach). */
export function lanAddress(interfaces: readonly string[] = lanInterfaces().interfaces): string | null {
  return announceAddress(networkInterfaces(), interfaces);
}

/**
 * Announces the site with an RFC 6762/6763 responder (`@homebridge/ciao`), which answers the
 * queries of every platform's resolver (Avahi, Apple's mDNSResponder, python-zeroconf). Returns the
 * function that withdraws the announcement (goodbye packets) and stops the responder.
 */
export async function announce(a: Announcement, log: Logger, explicitInterfaces?: readonly string[]): Promise<() => Promise<void>> {
  const { interfaces, missing } = lanInterfaces(explicitInterfaces);
  if (missing.length) log.warn({ missing }, 'NONDIVY_ANNOUNCE_INTERFACES names interfaces this host does not have (yet)');
  // Never fall back to ciao's default (every interface, Docker's included).
  if (interfaces.length === 0) throw new Error('no LAN interface to announce on (set NONDIVY_ANNOUNCE_INTERFACES)');
  const ciao = require('@homebridge/ciao') as Ciao;
  // A copy: ciao appends the loopback interface to the array it is given.
  const responder = ciao.getResponder({ interface: [...interfaces] });
  const host = lanAddress(interfaces);
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
