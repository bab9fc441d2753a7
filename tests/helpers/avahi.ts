import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild } from './stop-child.js';

/**
 * Debian's mDNS resolver (avahi) inside a test LAN's network namespace, as a LAN client's file
 * manager or avahi-discover browses: a D-Bus system bus of its own (a socket in a temp dir, never
 * the machine's bus), an avahi-daemon on that bus that browses only (publishes nothing) on the
 * namespace's `eth0`, and `avahi-browse -r` for each query. avahi-daemon keeps its pid file under
 * /run/avahi-daemon and refuses to start twice: it runs over a private tmpfs /run in the mount
 * namespace that `ip netns exec` makes, so the machine's /run is never touched.
 */
export interface AvahiBrowser {
  /** Resolved services of `type` (e.g. `_http._tcp`): until `done(found)` says so or `timeoutMs`. */
  browse(type: string, timeoutMs: number, done?: (found: AvahiService[]) => boolean): Promise<AvahiService[]>;
  stop(): Promise<void>;
}

/** One `=` line of `avahi-browse -rpk`: a resolved service. */
export interface AvahiService {
  interface: string;
  protocol: string;
  /** The instance name, unescaped. */
  name: string;
  type: string;
  domain: string;
  host: string;
  address: string;
  port: number;
  txt: Record<string, string>;
}

const TOOLS = ['avahi-daemon', 'avahi-browse', 'dbus-daemon'];

/** Why avahi cannot be used here (a tool is missing), or null. */
export function avahiUnavailable(): string | null {
  const missing = TOOLS.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  return missing.length ? `not installed: ${missing.join(', ')} (Debian: avahi-daemon avahi-utils dbus)` : null;
}

const busConfig = (socket: string) => `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="org.freedesktop.Avahi"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`;

const daemonConfig = (iface: string) => `[server]
host-name=ndbrowser
use-ipv4=yes
use-ipv6=no
allow-interfaces=${iface}
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
[reflector]
[rlimits]
`;

/** Starts the bus and the daemon in namespace `ns`; `stop()` ends both (by pid) and removes the temp dir. */
export async function startAvahi(ns: string, iface = 'eth0', startTimeoutMs = 10_000): Promise<AvahiBrowser> {
  const dir = mkdtempSync(join(tmpdir(), 'nondivy-avahi-'));
  const socket = join(dir, 'bus');
  writeFileSync(join(dir, 'bus.conf'), busConfig(socket));
  writeFileSync(join(dir, 'avahi-daemon.conf'), daemonConfig(iface));
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` };
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child, 3000);
    children.length = 0;
    rmSync(dir, { recursive: true, force: true });
  };
  /** `ip netns exec` execs its command: the child's pid is the daemon's own. */
  const start = (argv: string[], ready: RegExp, what: string) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} not ready within ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs);
      const onData = (d: Buffer) => {
        output += d;
        if (ready.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited with ${code}:\n${output}`));
      });
    });
  };
  try {
    await start(['dbus-daemon', `--config-file=${join(dir, 'bus.conf')}`, '--nofork', '--print-address'], /unix:path=/, 'dbus-daemon');
    await start(
      ['sh', '-c', 'mount -t tmpfs -o mode=0755 tmpfs /run && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "$0"', join(dir, 'avahi-daemon.conf')],
      /Server startup complete/,
      'avahi-daemon',
    );
  } catch (err) {
    await stop();
    throw err;
  }

  const browse = (type: string, timeoutMs: number, done?: (found: AvahiService[]) => boolean) =>
    new Promise<AvahiService[]>((resolve, reject) => {
      // -r resolve, -p parsable, -k service types as given (not their database names).
      const child = spawn('ip', ['netns', 'exec', ns, 'avahi-browse', '-rpk', type], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const found = new Map<string, AvahiService>();
      let buffer = '';
      let stderr = '';
      const finish = () => {
        clearTimeout(timer);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      };
      const timer = setTimeout(finish, timeoutMs);
      child.stdout!.on('data', (d: Buffer) => {
        buffer += d;
        let i: number;
        while ((i = buffer.indexOf('\n')) >= 0) {
          const service = parseResolved(buffer.slice(0, i));
          buffer = buffer.slice(i + 1);
          if (service) found.set(`${service.interface};${service.protocol};${service.name};${service.type}`, service);
        }
        if (done?.([...found.values()])) finish();
      });
      child.stderr!.on('data', (d: Buffer) => (stderr += d));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (signal === 'SIGTERM' || code === 0) resolve([...found.values()]);
        else reject(new Error(`avahi-browse exited with ${code}: ${stderr}`));
      });
    });

  return { browse, stop };
}

/** Parses `=;iface;proto;name;type;domain;host;address;port;"txt" "txt"…`; other lines: null. */
export function parseResolved(line: string): AvahiService | null {
  const f = line.split(';');
  if (f[0] !== '=' || f.length < 10) return null;
  return {
    interface: f[1]!,
    protocol: f[2]!,
    name: unescapeLabel(f[3]!),
    type: f[4]!,
    domain: f[5]!,
    host: f[6]!,
    address: f[7]!,
    port: Number(f[8]),
    // A TXT string may hold `;`: the rest of the line.
    txt: parseTxt(f.slice(9).join(';')),
  };
}

/** avahi's escapes, in names and TXT strings: `\DDD` (a byte in decimal) or `\` before the character itself. */
export function unescapeLabel(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^\d{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(Number(s.slice(i + 1, i + 4)));
      i += 3;
    } else if (s[i] === '\\' && i + 1 < s.length) {
      bytes.push(...Buffer.from(s[++i]!));
    } else {
      bytes.push(...Buffer.from(s[i]!));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `"k=v" "k2=v2"` to { k: v, k2: v2 }: each string up to its closing `"` (one not escaped), unescaped. */
function parseTxt(s: string): Record<string, string> {
  const txt: Record<string, string> = {};
  let i = 0;
  while (i < s.length) {
    if (s[i] !== '"') {
      i++;
      continue;
    }
    const start = ++i;
    while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
    const item = unescapeLabel(s.slice(start, i));
    i++;
    const eq = item.indexOf('=');
    txt[eq < 0 ? item : item.slice(0, eq)] = eq < 0 ? '' : item.slice(eq + 1);
  }
  return txt;
}

/** The URL host of a resolved address: an IPv6 one (link-local, as mDNS often gives) with its zone. */
export function urlHost(service: AvahiService): string {
  return service.address.includes(':') ? `[${service.address}%25${service.interface}]` : service.address;
}

/** A host's addresses on `iface` (IPv4 and IPv6), which a resolved service's address is one of. */
export function hostAddresses(ns: string, iface = 'eth0'): string[] {
  const res = spawnSync('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', iface], { encoding: 'utf8' });
  const links = JSON.parse(res.stdout || '[]') as { addr_info: { local: string }[] }[];
  return links.flatMap((l) => l.addr_info.map((a) => a.local));
}
