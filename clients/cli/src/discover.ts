import { isIPv4 } from 'node:net';
import { Bonjour, type Service } from 'bonjour-service';
import { CliError } from './errors.js';

/** A site found on the LAN (DNS-SD `_nondivy._tcp.local`). */
export interface FoundServer {
  /** The service instance name (the site's name). */
  name: string;
  siteId: string | null;
  /** The API base URL to use as --server. */
  api: string;
  ftpPort: number | null;
  version: string | null;
  host: string;
  addresses: string[];
  port: number;
}

function txtField(txt: unknown, key: string): string | null {
  if (!txt || typeof txt !== 'object') return null;
  const value = (txt as Record<string, unknown>)[key];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return null;
}

function toFound(service: Service): FoundServer {
  const addresses = [...new Set(service.addresses ?? [])];
  const txtApi = txtField(service.txt, 'api');
  const ipv4 = addresses.find((a) => isIPv4(a));
  const fallbackHost = ipv4 ?? (addresses[0] ? `[${addresses[0]}]` : service.host);
  const ftp = Number(txtField(service.txt, 'ftp'));
  return {
    name: txtField(service.txt, 'name') ?? service.name,
    siteId: txtField(service.txt, 'siteId'),
    api: (txtApi ?? `http://${fallbackHost}:${service.port}`).replace(/\/+$/, ''),
    ftpPort: Number.isInteger(ftp) && ftp > 0 ? ftp : null,
    version: txtField(service.txt, 'version'),
    host: service.host,
    addresses,
    port: service.port,
  };
}

/**
 * Browses the LAN for Nondivy sites for `timeoutMs` and returns each one once (a site answering on
 * several interfaces is one site: same site id, or same API URL).
 */
export async function discoverServers(timeoutMs: number, signal?: AbortSignal): Promise<FoundServer[]> {
  const found = new Map<string, FoundServer>();
  let failure: Error | undefined;
  const bonjour = new Bonjour({}, (err: Error) => {
    failure ??= err;
  });
  try {
    const browser = bonjour.find({ type: 'nondivy', protocol: 'tcp' }, (service) => {
      const server = toFound(service);
      const key = server.siteId ?? server.api;
      const known = found.get(key);
      if (known) known.addresses = [...new Set([...known.addresses, ...server.addresses])];
      else found.set(key, server);
    });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    browser.stop();
  } finally {
    // The socket closes at once; the timer only guards against a callback that never comes.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      bonjour.destroy(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  signal?.throwIfAborted();
  if (failure && found.size === 0) throw new CliError(`cannot browse the LAN for Nondivy sites (mDNS: ${failure.message})`);
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}
