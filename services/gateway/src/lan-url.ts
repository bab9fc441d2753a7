import { networkInterfaces } from 'node:os';

/** http://<first non-internal IPv4>:<port>: how LAN peers most likely reach this gateway. */
export function lanUrl(port: number): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return `http://${a.address}:${port}`;
  }
  return `http://127.0.0.1:${port}`;
}
