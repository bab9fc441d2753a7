import { networkInterfaces } from 'node:os';
import { createRequire } from 'node:module';
import type { Logger } from '@nondivy/log';
import { instanceName } from './instance-name.js';
import { announceAddress, chooseAnnounceInterfaces, type InterfaceChoice } from './interfaces.js';

const require = createRequire(import.meta.url);

/** What the site announces on the LAN (DNS-SD: `_nondivy._tcp`, `_http._tcp`, `_ftp._tcp`). */
export interface Announcement {
  siteId: string;
  siteName: string;
  httpPort: number;
  /** The FTP front door's port; 0 when this site has none to announce (no `_ftp._tcp`). */
  ftpPort: number;
  /** The API base URL to announce; default: http://<first IPv4 of the announced interfaces>:<httpPort>. */
  publicUrl?: string;
  version: string;
}

interface CiaoService {
  getFQDN(): string;
  on(event: 'name-change', listener: (name: string) => void): this;
  advertise(): Promise<void>;
  end(): Promise<void>;
  destroy(): Promise<void>;
}
interface CiaoResponder {
  createService(options: { name: string; type: string; port: number; txt: Record<string, string>; hostname?: string; disabledIpv6?: boolean }): CiaoService;
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

/** One DNS-SD service of the site: its type (without `_` and `._tcp`), instance name, port and TXT. */
export interface ServiceRecord {
  type: string;
  name: string;
  /** Distinct per service: ciao takes two services of one responder with one host name for a conflict. */
  hostname?: string;
  /**
   * Address records IPv4 only: the gateway and FTP listen on 0.0.0.0 by default, and a resolver
   * that is also given the interface's IPv6 link-local address may pick it (avahi does) and fail
   * to connect.
   */
  disabledIpv6?: boolean;
  port: number;
  txt: Record<string, string>;
}

/**
 * The services that announce the site:
 * - `_nondivy._tcp`, for Nondivy's own clients (the CLI's `discover`): the API and FTP port in its TXT;
 * - `_http._tcp`, the web app at `/`, which file managers, browsers and service browsers list
 *   (GNOME Files, Android file managers, avahi-discover) under the site's name;
 * - `_ftp._tcp`, the library over FTP (TXT `path=/library`, the folder that lists the files), named
 *   "<site name> (FTP)" so that it is told apart from the web app in one list; only when the site has
 *   an FTP port.
 * Instance names are the site's name fitted to one DNS label (see instanceName).
 */
export function serviceRecords(a: Announcement, api: string): ServiceRecord[] {
  const txt: Record<string, string> = { siteId: a.siteId, name: a.siteName, ftp: String(a.ftpPort), version: a.version, path: '/api/v1' };
  if (api) txt.api = api.replace(/\/+$/, '');
  const records: ServiceRecord[] = [
    { type: 'nondivy', name: instanceName(a.siteName), port: a.httpPort, txt },
    { type: 'http', name: instanceName(a.siteName), hostname: instanceName(a.siteName, ' http'), disabledIpv6: true, port: a.httpPort, txt: { path: '/' } },
  ];
  if (a.ftpPort > 0) records.push({ type: 'ftp', name: instanceName(a.siteName, ' (FTP)'), hostname: instanceName(a.siteName, ' ftp'), disabledIpv6: true, port: a.ftpPort, txt: { path: '/library' } });
  return records;
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
  const records = serviceRecords(a, api);
  const services = records.map((r) => {
    const service = responder.createService(r);
    // Another device on the LAN holds the name: ciao numbers ours, "Name (2)".
    service.on('name-change', (name) => log.warn({ type: `_${r.type}._tcp`, wanted: r.name, name }, 'the LAN already has a service of this name; announced under another'));
    return service;
  });
  const withdraw = async () => {
    for (const service of services) {
      await service.end().catch(() => undefined);
      await service.destroy().catch(() => undefined);
    }
    await responder.shutdown().catch(() => undefined);
  };
  try {
    await Promise.all(services.map((s) => s.advertise()));
  } catch (err) {
    await withdraw();
    throw err;
  }
  log.info(
    { type: '_nondivy._tcp', name: records[0]!.name, port: a.httpPort, api: records[0]!.txt.api, interfaces, services: services.map((s) => s.getFQDN()) },
    'announcing the site on the LAN',
  );
  return withdraw;
}
