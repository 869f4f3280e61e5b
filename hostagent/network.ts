import { z } from 'zod';
import type { CallContext } from './driver.js';

/**
 * The agent's half of networking (DESIGN.md "Networks"): a port is one VM NIC on one tenant network.
 * The agent is told everything it needs in each call (subnet, VNI, peers, compiled rules), so it keeps
 * no controller state of its own and a call repeated on another host (live migration) recreates the
 * same NIC there. `sim` records ports only; a Linux data plane realises them as taps on a bridge with
 * a VXLAN device, nftables on the tap and NAT in a router namespace.
 */

/**
 * A security-group rule as the host applies it: from (to) a CIDR, or from (to) the members of a remote
 * group, whose addresses the host keeps once per group (`setGroupMembers`, an nftables set in the Linux data
 * plane) rather than one rule per member on every port, which would grow with the square of a project.
 */
export const CompiledRule = z.object({
  direction: z.enum(['INGRESS', 'EGRESS']),
  protocol: z.enum(['TCP', 'UDP', 'ICMP', 'ANY']),
  portMin: z.number().int().min(1).max(65535).nullable(),
  portMax: z.number().int().min(1).max(65535).nullable(),
  remoteCidr: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/).nullable(),
  remoteGroupId: z.uuid().nullable(),
});
export type CompiledRule = z.infer<typeof CompiledRule>;

export const Mac = z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);

export const PortSpec = z.object({
  portId: z.uuid(),
  vmName: z.string().min(1).max(63),
  networkId: z.uuid(),
  /** The network's VXLAN id, the same on every host. */
  vni: z.number().int().min(1).max(16_777_215),
  cidr: z.string(),
  gateway: z.ipv4(),
  mac: Mac,
  address: z.ipv4(),
  rules: z.array(CompiledRule).max(1000).default([]),
  /** Floating addresses NATed to `address`. */
  floatingAddresses: z.array(z.ipv4()).max(16).default([]),
});
export type PortSpec = z.infer<typeof PortSpec>;

export const PortInfo = PortSpec.extend({ tap: z.string(), createdAt: z.string() });
export type PortInfo = z.infer<typeof PortInfo>;

/**
 * What plugging a port answers: the port, and the remote groups its rules name that this host holds no
 * member list for yet. The controller sets those before the instance runs; the lists the host already
 * holds are kept up to date by the project's membership fan-out, as for the host's other ports.
 * Absent (an agent from before it was added): every group the rules name.
 */
export const PluggedPort = PortInfo.extend({ groupsMissing: z.array(z.uuid()).optional() });
export type PluggedPort = z.infer<typeof PluggedPort>;

/** The remote groups a set of rules refers to, sorted, each once. */
export const remoteGroupsOf = (rules: readonly CompiledRule[]): string[] => [...new Set(rules.flatMap((r) => (r.remoteGroupId ? [r.remoteGroupId] : [])))].sort();

/** The remote groups of `rules` that `held` (a host's member lists, by group) has no list for. */
export const groupsMissingFrom = (rules: readonly CompiledRule[], held: Record<string, unknown>): string[] => remoteGroupsOf(rules).filter((g) => !(g in held));

export const PortId = z.object({ portId: z.uuid() });
export const PortRules = z.object({ ports: z.array(z.object({ portId: z.uuid(), rules: z.array(CompiledRule).max(1000) })).max(1000) });
export const PortFloating = z.object({ portId: z.uuid(), floatingAddresses: z.array(z.ipv4()).max(16) });
export const GroupMembers = z.object({ groups: z.array(z.object({ groupId: z.uuid(), addresses: z.array(z.ipv4()).max(65_536) })).max(64) });
export type GroupMembers = z.infer<typeof GroupMembers>;

/** What a driver offers for networking; a driver without it answers UNSUPPORTED to the network methods. */
export interface NetworkDataPlane {
  listPorts(): Promise<{ ports: PortInfo[]; groups: Record<string, string[]> }>;
  /** Creates (or, the same port again, keeps) the NIC: the hook live migration uses to recreate it on the destination. */
  plugPort(port: PortSpec, ctx: CallContext): Promise<PluggedPort>;
  unplugPort(portId: string, ctx: CallContext): Promise<{ unplugged: boolean }>;
  setPortRules(ports: z.infer<typeof PortRules>['ports'], ctx: CallContext): Promise<{ updated: number }>;
  setFloatingAddresses(portId: string, floatingAddresses: string[], ctx: CallContext): Promise<PortInfo>;
  /** Replaces the member addresses of each remote group named. */
  setGroupMembers(groups: GroupMembers['groups'], ctx: CallContext): Promise<{ updated: number }>;
}

/** The ports plugged on this host, by the VM they belong to: none where the driver has no data plane. */
export async function portsByVm(plane: NetworkDataPlane | undefined): Promise<Map<string, PortInfo[]>> {
  const byVm = new Map<string, PortInfo[]>();
  if (!plane) return byVm;
  for (const port of (await plane.listPorts()).ports) byVm.set(port.vmName, [...(byVm.get(port.vmName) ?? []), port]);
  return byVm;
}

/** The tap's name: Linux allows 15 characters, so the port id's head names it (Neutron's `tap` + 11 too). */
export const tapNameOf = (portId: string): string => `tap${portId.replace(/-/g, '').slice(0, 11)}`;
