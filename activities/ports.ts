import { createHash } from 'node:crypto';
import { instanceGroupsStream, securityGroupStream } from '../domain/events.js';
import type { Instance } from '../domain/instance.js';
import type { Address, Network } from '../domain/network.js';
import { defaultSecurityGroupId, instanceGroupsDecider, securityGroupDecider, type SecurityGroup } from '../domain/securityGroup.js';
import { remoteGroupsOf, type CompiledRule, type PortSpec } from '../hostagent/network.js';
import type { Runtime } from '../server/runtime.js';
import { readFolded } from './events.js';
import { readInstance, vmNameOf } from './instanceRecords.js';
import { EXTERNAL_SCOPE } from '../domain/networkIndex.js';
import { callAgent } from './agentCalls.js';
import { networksOfScope } from './ipam.js';
import { forgetPort, indexPort } from './portIndex.js';
import { announceMembershipChange } from './membership.js';

/**
 * How the controller describes a NIC to a host: one port per FIXED address (the port id is the address
 * id), its MAC derived from the port so it survives a move to another host, its network's VNI, and the
 * security-group rules compiled for the instance.
 */

/** Neutron's locally administered prefix fa:16:3e and three bytes of the port id's hash. */
export const macOf = (portId: string): string => {
  const h = createHash('sha256').update(portId).digest();
  return `fa:16:3e:${[h[0], h[1], h[2]].map((b) => b!.toString(16).padStart(2, '0')).join(':')}`;
};

/**
 * The network's VXLAN id, the same on every host, from its id (24 bits, never 0). Two networks can
 * collide in theory (one in ~16 M); an allocated VNI on the network's stream would close that.
 */
export const vniOf = (networkId: string): number => (createHash('sha256').update(networkId).digest().readUInt32BE(0) % 16_777_214) + 1;

export async function groupsOf(rt: Pick<Runtime, 'store'>, instance: Pick<Instance, 'id' | 'projectId'>): Promise<string[]> {
  const { state } = await readFolded(rt, instanceGroupsStream(instance.id), instanceGroupsDecider);
  return state?.securityGroupIds ?? [defaultSecurityGroupId(instance.projectId)];
}

/**
 * The groups of many instances in one read of their binding streams' last events (a boot compiles the
 * rules of a project with hundreds of instances; one stream read each would make boots quadratic).
 */
async function groupsOfMany(rt: Pick<Runtime, 'db'>, projectId: string, instanceIds: string[]): Promise<Map<string, string[]>> {
  const rows = await rt.db.query<{ stream_id: string; data: { securityGroupIds: string[] } }>(
    `SELECT DISTINCT ON (stream_id) stream_id, data FROM events WHERE stream_id = ANY($1) AND type = 'InstanceSecurityGroupsSet' ORDER BY stream_id, version DESC`,
    [instanceIds.map(instanceGroupsStream)],
  );
  const set = new Map(rows.map((r) => [r.stream_id, r.data.securityGroupIds]));
  return new Map(instanceIds.map((id) => [id, set.get(instanceGroupsStream(id)) ?? [defaultSecurityGroupId(projectId)]]));
}

async function readGroup(rt: Pick<Runtime, 'store'>, id: string): Promise<SecurityGroup | null> {
  return (await readFolded(rt, securityGroupStream(id), securityGroupDecider)).state;
}

/** Every live instance of the project with a FIXED address, read from its networks: no projection lag. */
export async function projectPorts(rt: Pick<Runtime, 'store'>, projectId: string): Promise<{ address: Address; network: Network; instance: Instance }[]> {
  const networks = await networksOfScope(rt, projectId);
  const held = networks.flatMap((network) => Object.values(network.addresses).filter((a) => a.kind === 'FIXED' && a.instanceId).map((address) => ({ address, network })));
  const instances = new Map<string, Instance>();
  for (const id of new Set(held.map((h) => h.address.instanceId!))) instances.set(id, await readInstance(rt, id).catch(() => undefined as never));
  return held.flatMap((h) => {
    const instance = instances.get(h.address.instanceId!);
    return instance && instance.state !== 'DELETED' ? [{ ...h, instance }] : [];
  });
}

/** The instance's rules as hosts apply them: the union of its groups' rules. A group that is gone contributes nothing. */
export async function compileRules(rt: Pick<Runtime, 'store'>, instance: Pick<Instance, 'id' | 'projectId'>): Promise<CompiledRule[]> {
  const groups = (await Promise.all((await groupsOf(rt, instance)).map((id) => readGroup(rt, id)))).filter((g): g is SecurityGroup => g !== null);
  return groups.flatMap((g) =>
    g.rules.map((r) => ({
      direction: r.direction,
      protocol: r.protocol,
      portMin: r.portMin,
      portMax: r.portMax,
      remoteCidr: r.remoteGroupId ? null : r.remoteCidr,
      remoteGroupId: r.remoteGroupId,
    })),
  );
}

/**
 * The FIXED addresses of each named group's members in the project. A FIXED address bound to an
 * instance is live: deleting an instance releases them.
 */
export async function groupMembers(rt: Pick<Runtime, 'store' | 'db'>, projectId: string, groupIds: string[]): Promise<{ groupId: string; addresses: string[] }[]> {
  const fixed = (await networksOfScope(rt, projectId)).flatMap((n) => Object.values(n.addresses).filter((a) => a.kind === 'FIXED' && a.instanceId));
  const groups = await groupsOfMany(rt, projectId, [...new Set(fixed.map((a) => a.instanceId!))]);
  return groupIds.map((groupId) => ({ groupId, addresses: fixed.filter((a) => groups.get(a.instanceId!)?.includes(groupId)).map((a) => a.address).sort() }));
}

export { remoteGroupsOf };

/**
 * Tells `hostIds` the current members of `groupIds`, one call each, in turn: for the host a port was
 * just plugged on, whose rules need them now. Every other host hears of a membership change from the
 * project's fan-out workflow (activities/membership.ts). Then it announces the groups pushed, and
 * `changed` (groups the instance joined), to that fan-out: a round that read the members before this
 * push may land after it, and the announcement makes a later round read them after. `key` prefixes
 * the agent idempotency keys.
 */
export async function pushGroupMembers(rt: Runtime, projectId: string, groupIds: string[], hostIds: string[], key: string, changed: string[] = []): Promise<void> {
  await pushMembersNow(rt, projectId, groupIds, hostIds, key);
  await announceMembershipChange(rt, projectId, [...groupIds, ...changed]);
}

async function pushMembersNow(rt: Runtime, projectId: string, groupIds: string[], hostIds: string[], key: string): Promise<void> {
  if (groupIds.length === 0 || hostIds.length === 0) return;
  const groups = await groupMembers(rt, projectId, groupIds);
  // The member lists change while other instances boot, so a retried step may push different lists:
  // the key names the content too, or the agent would refuse the retry as a reused key. Setting the
  // same lists twice is harmless.
  const content = createHash('sha256').update(JSON.stringify(groups)).digest('hex').slice(0, 16);
  for (const hostId of [...new Set(hostIds)].sort()) {
    await unlessUnsupported(callAgent(rt, hostId, 'setGroupMembers', { groups }, { idempotencyKey: `${key}:${hostId}:${content}` }));
  }
}

export async function portSpecOf(rt: Pick<Runtime, 'store'>, instance: Instance, address: Address, network: Network, floating: string[] = []): Promise<PortSpec> {
  return {
    portId: address.id,
    vmName: vmNameOf(instance),
    networkId: network.id,
    vni: vniOf(network.id),
    cidr: network.cidr,
    gateway: network.gateway,
    mac: macOf(address.id),
    address: address.address,
    rules: await compileRules(rt, instance),
    floatingAddresses: floating,
  };
}

/**
 * A network call to a host whose driver has no data plane (qemu without a `netNamespace`) is a no-op: the address is
 * still the instance's in IPAM, the guest simply gets no NIC. Every other refusal stands.
 */
export async function unlessUnsupported<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (e) {
    if ((e as { code?: string }).code === 'UNSUPPORTED') return undefined;
    throw e;
  }
}

/**
 * The hook live migration uses to keep the NIC: plugs every port of the instance on `hostId` exactly
 * as on its old host (same port id, MAC, address, rules and floating addresses), so the guest keeps
 * its address. Call it on the destination before the VM moves, and `unplugInstancePorts` on the source
 * after. `key` names the call (an agent idempotency key prefix, one per step).
 */
/** The instance's ports: each FIXED address it holds, with its network. */
async function portsOfInstance(rt: Pick<Runtime, 'store'>, instance: Instance): Promise<{ network: Network; address: Address }[]> {
  return (await networksOfScope(rt, instance.projectId)).flatMap((network) =>
    Object.values(network.addresses)
      .filter((a) => a.kind === 'FIXED' && a.instanceId === instance.id)
      .map((address) => ({ network, address })),
  );
}

export async function plugInstancePorts(rt: Runtime, instance: Instance, hostId: string, key: string): Promise<PortSpec[]> {
  const plugged: PortSpec[] = [];
  // As for a boot (addressSteps.ts plugBootPort): the lists the host lacks are set here; the ones it
  // holds are kept current by the fan-out. An agent that does not say what it lacks gets them all.
  const missing = new Set<string>();
  for (const { network, address } of await portsOfInstance(rt, instance)) {
    const floating = (await floatingTo(rt, address.address)).filter((f) => f.instanceId === instance.id).map((f) => f.address);
    const spec = await portSpecOf(rt, instance, address, network, floating);
    await indexPort(rt, { portId: spec.portId, hostId, projectId: instance.projectId, rules: spec.rules });
    const answer = await unlessUnsupported(callAgent(rt, hostId, 'plugPort', { port: spec }, { idempotencyKey: `${key}:${address.id}` }));
    for (const g of answer?.groupsMissing ?? remoteGroupsOf(spec.rules)) missing.add(g);
    plugged.push(spec);
  }
  await pushGroupMembers(rt, instance.projectId, [...missing].sort(), [hostId], `${key}:members`);
  return plugged;
}

/** Removes the instance's ports from `hostId` (the source host after a move); ports it does not have are fine. */
export async function unplugInstancePorts(rt: Runtime, instance: Instance, hostId: string, key: string): Promise<void> {
  for (const { address } of await portsOfInstance(rt, instance)) {
    await unlessUnsupported(callAgent(rt, hostId, 'unplugPort', { portId: address.id }, { idempotencyKey: `${key}:${address.id}` }));
    await forgetPort(rt, address.id, hostId);
  }
}

/** The controller stops counting the instance's ports as on `hostId` (a DOWN host it cannot ask): no more membership news goes there for them. */
export async function forgetInstancePorts(rt: Runtime, instance: Instance, hostId: string): Promise<void> {
  for (const { address } of await portsOfInstance(rt, instance)) await forgetPort(rt, address.id, hostId);
}

/** The floating addresses (on the external networks) that NAT to `fixedAddress`. */
async function floatingTo(rt: Pick<Runtime, 'store'>, fixedAddress: string): Promise<Address[]> {
  return (await networksOfScope(rt, EXTERNAL_SCOPE)).flatMap((n) => Object.values(n.addresses).filter((a) => a.fixedAddress === fixedAddress));
}
