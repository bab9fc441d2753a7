/**
 * Which network interfaces the site is announced on. On a host that runs Docker (the discovery
 * container uses the host's network), libvirt, Kubernetes or a VPN, most interfaces are not the LAN:
 * announcing there leaks the site to containers, VMs or VPN peers, and makes the responder send
 * every packet on dozens of veths. Pure functions over the interface table, so the choice is tested
 * on tables of names and addresses.
 */

/** An address as `os.networkInterfaces()` reports it. */
export interface InterfaceAddress {
  address: string;
  family: string | number;
  internal: boolean;
}

export type InterfaceTable = Record<string, InterfaceAddress[] | undefined>;

/**
 * Name prefixes of virtual interfaces that are never the LAN by default:
 * - Docker: `docker0`, `docker_gwbridge`, the host side of every container's link (`veth…`);
 *   user-defined networks' bridges are `br-` and 12 hex digits (matched apart, below, so that a LAN
 *   bridge such as OpenWrt's `br-lan` or a plain `br0` still counts);
 * - other container, Kubernetes and VM networks: libvirt (`virbr`, guests' `vnet`), LXC/LXD
 *   (`lxcbr`, `lxdbr`), Podman, CNI, Flannel, Calico (`cali`), Weave, VXLAN, Cilium, kube-ipvs,
 *   VMware (`vmnet`), VirtualBox host-only (`vboxnet`);
 * - tunnels and VPNs: `tun`, `tap`, WireGuard (`wg`), Tailscale, ZeroTier (`zt`), macOS `utun`.
 * A host whose LAN really is one of these names it in NONDIVY_ANNOUNCE_INTERFACES.
 */
export const VIRTUAL_INTERFACE_PREFIXES = [
  'docker', 'veth', 'virbr', 'vnet', 'lxcbr', 'lxdbr', 'podman', 'cni', 'flannel', 'cali', 'weave',
  'vxlan', 'cilium', 'kube-', 'vmnet', 'vboxnet', 'tun', 'tap', 'wg', 'tailscale', 'zt', 'utun',
] as const;

/** Docker's bridge of a user-defined network: `br-` and the network id's first 12 hex digits. */
const DOCKER_NETWORK_BRIDGE = /^br-[0-9a-f]{12}$/;

export function isVirtualInterface(name: string): boolean {
  return DOCKER_NETWORK_BRIDGE.test(name) || VIRTUAL_INTERFACE_PREFIXES.some((p) => name.startsWith(p));
}

export interface InterfaceChoice {
  /** The interfaces to announce on, in the table's order (the explicit list's order when given). */
  interfaces: string[];
  /** Names of the explicit list that the host does not have now (announced on once they appear). */
  missing: string[];
}

/**
 * The interfaces to announce on: the explicit list when one is given (NONDIVY_ANNOUNCE_INTERFACES;
 * taken as the operator wrote it, virtual names included, and kept whole: an interface that comes
 * up later, such as Wi-Fi, is announced on once it has an address), else every interface with a
 * non-internal address that is not virtual (see VIRTUAL_INTERFACE_PREFIXES). A test LAN's `eth0`
 * is a veth pair's end, yet chosen: the choice goes by name, as a container's own `eth0` is its
 * LAN too.
 */
export function chooseAnnounceInterfaces(table: InterfaceTable, explicit?: readonly string[]): InterfaceChoice {
  if (explicit && explicit.length > 0) {
    const names = [...new Set(explicit)];
    return { interfaces: names, missing: names.filter((n) => !(n in table)) };
  }
  const interfaces = Object.entries(table)
    .filter(([name, addrs]) => !isVirtualInterface(name) && (addrs ?? []).some((a) => !a.internal))
    .map(([name]) => name);
  return { interfaces, missing: [] };
}

/**
 * The address announced in the default API URL: the first IPv4 address of the chosen interfaces
 * (never, say, docker0's 172.17.0.1, which no LAN device reaches).
 */
export function announceAddress(table: InterfaceTable, interfaces: readonly string[]): string | null {
  for (const name of interfaces) {
    for (const a of table[name] ?? []) if ((a.family === 'IPv4' || a.family === 4) && !a.internal) return a.address;
  }
  return null;
}
