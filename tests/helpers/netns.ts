import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * A throwaway LAN of network namespaces joined by a bridge: each host gets 10.<n>.<m>.<i>/24 on a
 * veth, multicast on, and a multicast route, so mDNS works between them — and nothing reaches the
 * machine's real interfaces. Needs root (CAP_NET_ADMIN); `lanUnavailable()` says why when it can't.
 */
export interface TestLan {
  hosts: { ns: string; ip: string }[];
  /** argv prefix that runs a command inside host i's namespace. */
  prefix(i: number): string[];
  cleanup(): void;
}

const ip = (...args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });

export function lanUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)';
  const probe = `ndprobe${randomBytes(3).toString('hex')}`;
  const res = ip('netns', 'add', probe);
  if (res.status !== 0) return `cannot create a network namespace: ${res.stderr.trim()}`;
  ip('netns', 'del', probe);
  return null;
}

export function createLan(count: number): TestLan {
  const tag = randomBytes(3).toString('hex');
  const net = `10.${100 + (parseInt(tag.slice(0, 2), 16) % 100)}.${parseInt(tag.slice(2, 4), 16)}`;
  const hub = `ndhub${tag}`;
  const hosts = Array.from({ length: count }, (_, i) => ({ ns: `nd${tag}h${i}`, ip: `${net}.${i + 1}` }));
  const must = (...args: string[]) => {
    const r = ip(...args);
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  };
  const cleanup = () => {
    for (const h of hosts) ip('netns', 'del', h.ns);
    ip('netns', 'del', hub);
  };
  try {
    // The bridge lives in its own namespace too: the root namespace is never touched.
    must('netns', 'add', hub);
    must('-n', hub, 'link', 'add', 'br0', 'type', 'bridge');
    must('-n', hub, 'link', 'set', 'br0', 'up');
    hosts.forEach((h, i) => {
      must('netns', 'add', h.ns);
      must('-n', h.ns, 'link', 'set', 'lo', 'up');
      must('-n', h.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', hub);
      must('-n', hub, 'link', 'set', `p${i}`, 'master', 'br0');
      must('-n', hub, 'link', 'set', `p${i}`, 'up');
      must('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
      must('-n', h.ns, 'link', 'set', 'eth0', 'multicast', 'on');
      must('-n', h.ns, 'link', 'set', 'eth0', 'up');
      must('-n', h.ns, 'link', 'set', 'lo', 'multicast', 'on');
      must('-n', h.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
    });
  } catch (err) {
    cleanup();
    throw err;
  }
  return { hosts, prefix: (i) => ['ip', 'netns', 'exec', hosts[i]!.ns], cleanup };
}
