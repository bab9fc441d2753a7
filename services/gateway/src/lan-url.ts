import { networkInterfaces } from 'node:os';

/** http://<address>:<port> for every non-internal IPv4 address of this host: how LAN peers may reach it. */
export function lanUrls(port: number): string[] {
  const urls: string[] = [];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) urls.push(`http://${a.address}:${port}`);
  }
  return urls;
}

/** http://<first non-internal IPv4>:<port>: how LAN peers most likely reach this gateway. */
export function lanUrl(port: number): string {
  return lanUrls(port)[0] ?? `http://127.0.0.1:${port}`;
}

/**
 * The addresses to tell people at start-up: the public URL when one is configured (that is how
 * clients reach the site, e.g. through a reverse proxy); else, listening on every interface, each
 * LAN address; else the one address listened on.
 */
export function advertisedUrls(listenHost: string, port: number, publicUrl?: string): string[] {
  if (publicUrl) return [publicUrl.replace(/\/$/, '')];
  if (listenHost === '0.0.0.0' || listenHost === '::') {
    const lan = lanUrls(port);
    return lan.length ? lan : [`http://127.0.0.1:${port}`];
  }
  return [`http://${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`];
}
