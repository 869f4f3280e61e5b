import { ensureAddress, ensureNamespace, inNs, linkExists, linkUp, must, run } from './ip.js';

/**
 * Floating addresses: a router namespace next to the agent's, joined to it by a transit veth pair and
 * to the external network by a device of its own. A floating address is a /32 on the external device
 * (so the router answers ARP for it), DNATed to the port's fixed address on the way in and SNATed on
 * the way out, in an nftables table rebuilt whole from the ports on every change. The agent's namespace
 * routes the tenant subnets (its bridges hold their gateways) and sends everything else to the router.
 */

export interface RouterConfig { ns: string; agentNs: string; externalDevice: string; externalRoute?: string }

/** The transit link: a /30 of link-local addresses, the agent's side first. */
const TRANSIT = { agent: '169.254.254.1', router: '169.254.254.2', prefix: 30, agentDev: 'rtr-out', routerDev: 'rtr-in' };
const NAT_TABLE = 'stratus_nat';

export async function ensureRouter(c: RouterConfig): Promise<void> {
  await ensureNamespace(c.ns);
  await inNs(c.ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  await inNs(c.agentNs, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  if (!(await linkExists(c.agentNs, TRANSIT.agentDev))) {
    await must('ip', ['-n', c.agentNs, 'link', 'add', TRANSIT.agentDev, 'type', 'veth', 'peer', 'name', TRANSIT.routerDev, 'netns', c.ns]);
  }
  await ensureAddress(c.agentNs, TRANSIT.agentDev, `${TRANSIT.agent}/${TRANSIT.prefix}`);
  await ensureAddress(c.ns, TRANSIT.routerDev, `${TRANSIT.router}/${TRANSIT.prefix}`);
  await linkUp(c.agentNs, TRANSIT.agentDev);
  await linkUp(c.ns, TRANSIT.routerDev);
  await must('ip', ['-n', c.agentNs, 'route', 'replace', 'default', 'via', TRANSIT.router]);
  if (await linkExists(undefined, c.externalDevice)) await must('ip', ['link', 'set', 'dev', c.externalDevice, 'netns', c.ns]);
  if (!(await linkExists(c.ns, c.externalDevice))) throw new Error(`external device ${c.externalDevice} is in neither the host's namespace nor ${c.ns}`);
  await linkUp(c.ns, c.externalDevice);
  if (c.externalRoute) await must('ip', ['-n', c.ns, 'route', 'replace', c.externalRoute, 'dev', c.externalDevice]);
}

/** The router reaches a tenant subnet through the agent's namespace. */
export const routeSubnet = (c: RouterConfig, cidr: string) => must('ip', ['-n', c.ns, 'route', 'replace', cidr, 'via', TRANSIT.agent]);
export const unrouteSubnet = (c: RouterConfig, cidr: string) => run('ip', ['-n', c.ns, 'route', 'del', cidr]);

export interface Nat { floating: string; fixed: string }

export function natScript(nats: Nat[]): string {
  const lines = [
    `add table ip ${NAT_TABLE}`,
    `flush table ip ${NAT_TABLE}`,
    `add chain ip ${NAT_TABLE} pre { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ip ${NAT_TABLE} post { type nat hook postrouting priority srcnat; policy accept; }`,
    ...nats.flatMap((n) => [
      `add rule ip ${NAT_TABLE} pre ip daddr ${n.floating} dnat to ${n.fixed}`,
      `add rule ip ${NAT_TABLE} post ip saddr ${n.fixed} oifname != "${TRANSIT.routerDev}" snat to ${n.floating}`,
    ]),
  ];
  return lines.join('\n') + '\n';
}

/** The NAT table and the /32s on the external device, made to match `nats`. */
export async function applyNat(c: RouterConfig, nats: Nat[]): Promise<void> {
  await inNs(c.ns, 'nft', ['-f', '-'], natScript(nats));
  const shown = await must('ip', ['-n', c.ns, '-o', '-4', 'addr', 'show', 'dev', c.externalDevice]);
  const present = [...shown.matchAll(/inet ([\d.]+)\/32/g)].map((m) => m[1]!);
  const wanted = new Set(nats.map((n) => n.floating));
  for (const a of present.filter((p) => !wanted.has(p))) await must('ip', ['-n', c.ns, 'addr', 'del', `${a}/32`, 'dev', c.externalDevice]);
  for (const a of [...wanted].filter((w) => !present.includes(w))) await must('ip', ['-n', c.ns, 'addr', 'add', `${a}/32`, 'dev', c.externalDevice]);
  // The kernel flushes every route through a device whose last IPv4 address goes: the last floating
  // address of this host being disassociated takes the external route with it, and the next one to
  // be associated would be DNATed in but its replies would have no way out.
  if (c.externalRoute) await must('ip', ['-n', c.ns, 'route', 'replace', c.externalRoute, 'dev', c.externalDevice]);
}
