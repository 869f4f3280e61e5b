import type { CompiledRule } from '../network.js';
import { inNs, run } from './ip.js';

/**
 * Security groups as nftables rules in the agent's namespace, one chain per tap and direction.
 *
 * The kernel has no conntrack in nftables' bridge family, so bridged IPv4 goes through the inet hooks
 * (br_netfilter, `bridge-nf-call-iptables` in the agent's namespace), where `ct state` works:
 * - egress (what the guest sends) is judged in inet `prerouting`, where the input device is the tap;
 * - ingress (what reaches the guest) is judged in inet `forward`, where the devices are the bridge's, so
 *   the bridge family's `forward` hook first marks the packet with its destination port's number;
 *   routed traffic (from the router namespace: floating addresses) is not bridged, and is matched by
 *   its destination address instead.
 * Rules are stateful as in Neutron: replies to allowed traffic pass, everything else not allowed is dropped.
 * The bridge table also keeps the host's side of each network (dnsmasq and the gateway address, the same
 * on every host) off the VXLAN devices, so every guest talks to its own host's DHCP server and gateway.
 * Remote groups are sets (`g_<group>`), filled by `setGroupMembers`.
 */

export const TABLE = 'stratus';

export const ingressChain = (tap: string) => `in_${tap}`;
export const egressChain = (tap: string) => `out_${tap}`;
export const groupSet = (groupId: string) => `g_${groupId.replace(/-/g, '')}`;
/** A port's mark: 28 bits of its id, never 0 (the tap name holds 44 bits of the same id). */
export const portMark = (portId: string) => (parseInt(portId.replace(/-/g, '').slice(0, 7), 16) || 1) >>> 0;
const hex = (n: number) => `0x${n.toString(16)}`;

export function baseScript(): string {
  return `add table bridge ${TABLE}
add map bridge ${TABLE} port_marks { type ifname : mark; }
add chain bridge ${TABLE} forward { type filter hook forward priority -200; policy accept; }
add chain bridge ${TABLE} input { type filter hook input priority 0; policy accept; }
add chain bridge ${TABLE} output { type filter hook output priority 0; policy accept; }
flush chain bridge ${TABLE} forward
flush chain bridge ${TABLE} input
flush chain bridge ${TABLE} output
add rule bridge ${TABLE} forward meta mark set oifname map @port_marks
add rule bridge ${TABLE} input iifname "vx-*" drop
add rule bridge ${TABLE} output oifname "vx-*" drop
add table inet ${TABLE}
add map inet ${TABLE} ingress { type mark : verdict; }
add map inet ${TABLE} egress { type ifname : verdict; }
add map inet ${TABLE} routed { type ipv4_addr : verdict; }
add chain inet ${TABLE} forward { type filter hook forward priority 0; policy accept; }
add chain inet ${TABLE} prerouting { type filter hook prerouting priority 0; policy accept; }
flush chain inet ${TABLE} forward
flush chain inet ${TABLE} prerouting
add rule inet ${TABLE} forward meta mark vmap @ingress
add rule inet ${TABLE} forward ip daddr vmap @routed
add rule inet ${TABLE} prerouting iifname vmap @egress
`;
}

/** One rule's match, from the port's point of view (ingress: the remote is the source). */
export function ruleMatch(rule: CompiledRule): string {
  const parts = ['meta nfproto ipv4'];
  const remote = rule.direction === 'INGRESS' ? 'ip saddr' : 'ip daddr';
  if (rule.remoteGroupId) parts.push(`${remote} @${groupSet(rule.remoteGroupId)}`);
  else if (rule.remoteCidr && rule.remoteCidr !== '0.0.0.0/0') parts.push(`${remote} ${rule.remoteCidr}`);
  if (rule.protocol === 'ICMP') parts.push('meta l4proto icmp');
  if (rule.protocol === 'TCP' || rule.protocol === 'UDP') {
    const l4 = rule.protocol.toLowerCase();
    parts.push(`meta l4proto ${l4}`);
    if (rule.portMin !== null) parts.push(`${l4} dport ${rule.portMin === (rule.portMax ?? rule.portMin) ? rule.portMin : `${rule.portMin}-${rule.portMax}`}`);
  }
  return parts.join(' ');
}

export interface NftPort { portId: string; tap: string; mac: string; address: string; rules: CompiledRule[]; floatingAddresses: string[] }

/** The sets a port's rules name, made empty if this host has not been told their members yet. */
function setsOf(rules: CompiledRule[]): string[] {
  return [...new Set(rules.flatMap((r) => (r.remoteGroupId ? [groupSet(r.remoteGroupId)] : [])))].map((s) => `add set inet ${TABLE} ${s} { type ipv4_addr; }`);
}

/** A port's two chains, replaced whole in one transaction, and its entries in the dispatch maps. */
export function portScript(p: NftPort): string {
  const ing = ingressChain(p.tap);
  const eg = egressChain(p.tap);
  const lines = [
    ...setsOf(p.rules),
    `add chain inet ${TABLE} ${ing}`,
    `add chain inet ${TABLE} ${eg}`,
    `flush chain inet ${TABLE} ${ing}`,
    `flush chain inet ${TABLE} ${eg}`,
    `add rule inet ${TABLE} ${ing} ct state established,related accept`,
    ...p.rules.filter((r) => r.direction === 'INGRESS').map((r) => `add rule inet ${TABLE} ${ing} ${ruleMatch(r)} accept`),
    `add rule inet ${TABLE} ${ing} drop`,
    // Anti-spoofing: the guest sends from its own MAC and address only (DHCP before it has one).
    `add rule inet ${TABLE} ${eg} ether saddr != ${p.mac} drop`,
    `add rule inet ${TABLE} ${eg} meta nfproto ipv4 udp sport 68 udp dport 67 accept`,
    `add rule inet ${TABLE} ${eg} meta nfproto ipv4 ip saddr != ${p.address} drop`,
    `add rule inet ${TABLE} ${eg} ct state established,related accept`,
    ...p.rules.filter((r) => r.direction === 'EGRESS').map((r) => `add rule inet ${TABLE} ${eg} ${ruleMatch(r)} accept`),
    `add rule inet ${TABLE} ${eg} drop`,
    `add element bridge ${TABLE} port_marks { "${p.tap}" : ${hex(portMark(p.portId))} }`,
    `add element inet ${TABLE} ingress { ${hex(portMark(p.portId))} : jump ${ing} }`,
    `add element inet ${TABLE} egress { "${p.tap}" : jump ${eg} }`,
    // Only ports with floating addresses are reached by routing (two projects' subnets may overlap on a host).
    ...(p.floatingAddresses.length > 0 ? [`add element inet ${TABLE} routed { ${p.address} : jump ${ing} }`] : []),
  ];
  return lines.join('\n') + '\n';
}

export function groupScript(groupId: string, addresses: string[]): string {
  const set = groupSet(groupId);
  const lines = [`add set inet ${TABLE} ${set} { type ipv4_addr; }`, `flush set inet ${TABLE} ${set}`];
  if (addresses.length > 0) lines.push(`add element inet ${TABLE} ${set} { ${addresses.join(', ')} }`);
  return lines.join('\n') + '\n';
}

export const applyScript = (ns: string, script: string) => inNs(ns, 'nft', ['-f', '-'], script);

/** The port is no longer reached by routing (its last floating address went); it may not have been. */
export async function unroutePort(ns: string, address: string): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'nft', 'delete', 'element', 'inet', TABLE, 'routed', `{ ${address} }`]);
}

/** Removes a port's chains and map entries; each piece may already be gone. */
export async function removePort(ns: string, portId: string, tap: string, address: string): Promise<void> {
  const cmds = [
    ['delete', 'element', 'inet', TABLE, 'routed', `{ ${address} }`],
    ['delete', 'element', 'bridge', TABLE, 'port_marks', `{ "${tap}" }`],
    ['delete', 'element', 'inet', TABLE, 'ingress', `{ ${hex(portMark(portId))} }`],
    ['delete', 'element', 'inet', TABLE, 'egress', `{ "${tap}" }`],
    ['delete', 'chain', 'inet', TABLE, ingressChain(tap)],
    ['delete', 'chain', 'inet', TABLE, egressChain(tap)],
  ];
  for (const c of cmds) await run('ip', ['netns', 'exec', ns, 'nft', ...c]);
}

/** Whether any rule or map entry in the namespace names `tap` (what the cleanup tests look for). */
export async function mentions(ns: string, tap: string): Promise<boolean> {
  const r = await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']);
  return r.out.includes(tap);
}
