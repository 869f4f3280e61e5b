import { randomUUID } from 'node:crypto';
import { decideAndAppend, readFolded } from '../../activities/events.js';
import { lockStream, readNetwork } from '../../activities/ipam.js';
import { parseSubnet, type Subnet } from '../../domain/cidr.js';
import { StratusError } from '../../domain/errors.js';
import { networkIndexStream, networkStream } from '../../domain/events.js';
import { canRead, type Caller } from '../../domain/identity.js';
import { decideNetwork, gatewayFor, networkDecider, type Network, type NetworkEvent } from '../../domain/network.js';
import type { CreateNetworkInput, DeleteNetworkInput } from '../../domain/networkInputs.js';
import {
  DEFAULT_NETWORK_CIDR,
  EXTERNAL_SCOPE,
  decideNetworkIndex,
  defaultNetworkId,
  networkIndexDecider,
  type NetworkIndex,
  type NetworkIndexEvent,
} from '../../domain/networkIndex.js';
import { WrongExpectedVersion } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin, requireMutableIn, requireWriter } from './access.js';
import { appendNew, commandMetadata, now } from './operations.js';
import { ensureDefaultSecurityGroup } from './securityGroups.js';

const notFound = (id: string) => () => new StratusError('NOT_FOUND', `network ${id} not found`, { id });

/** A network the caller may see: its project's, or an external one (every project takes floating addresses from those). */
export async function visibleNetwork(rt: Runtime, caller: Caller, id: string): Promise<Network> {
  const network = await readNetwork(rt, id);
  if (!network || network.deleted || (network.projectId !== null && !canRead(caller, network.projectId))) throw notFound(id)();
  return network;
}

/**
 * Records a network and its place in its scope's index in one transaction, the index's version expected:
 * a concurrent creation in the same project makes one of the two decide again, on the other's network,
 * so overlapping subnets can never both land.
 */
async function recordNetwork(rt: Runtime, caller: Caller, network: { id: string; projectId: string | null; name: string; subnet: Subnet; gateway: string; external: boolean }) {
  const scope = network.projectId ?? EXTERNAL_SCOPE;
  const metadata = commandMetadata(caller);
  for (let round = 1; ; round++) {
    const index = await readFolded<NetworkIndex, NetworkIndexEvent>(rt, networkIndexStream(scope), networkIndexDecider);
    const indexEvents = decideNetworkIndex({ type: 'register', data: { networkId: network.id, cidr: network.subnet.cidr, name: network.name } }, index.state);
    const networkEvents = decideNetwork(
      {
        type: 'create',
        data: { networkId: network.id, projectId: network.projectId, name: network.name, cidr: network.subnet.cidr, gateway: network.gateway, external: network.external, at: now() },
      },
      null,
    );
    try {
      await rt.db.transaction(async (tx) => {
        await appendNew(rt, networkStream(network.id), networkEvents, 'noStream', metadata, tx);
        await appendNew(rt, networkIndexStream(scope), indexEvents, index.version === 0 ? 'noStream' : index.version, metadata, tx);
      });
      return networkEvents.reduce(networkDecider.evolve, null as Network | null)!;
    } catch (e) {
      if (!(e instanceof WrongExpectedVersion) || round >= 10) throw e;
      // The network's own stream exists: a racing twin (the default network) made it first.
      if (e.streamId === networkStream(network.id)) {
        const made = await readNetwork(rt, network.id);
        if (made && !made.deleted) return made;
        throw e;
      }
    }
  }
}

/** createNetwork: a project network (member), or an external one for floating addresses (admin only). */
export async function createNetwork(rt: Runtime, caller: Caller, input: CreateNetworkInput): Promise<{ network: Network }> {
  requireWriter(caller);
  if (input.external) requireAdmin(caller);
  const subnet = parseSubnet(input.cidr) as Subnet;
  const network = await recordNetwork(rt, caller, {
    id: randomUUID(),
    projectId: input.external ? null : caller.projectId,
    name: input.name,
    subnet,
    gateway: gatewayFor(subnet, input.gateway),
    external: input.external,
  });
  return { network };
}

/** deleteNetwork: refused with CONFLICT while any address of it is allocated. */
export async function deleteNetwork(rt: Runtime, caller: Caller, input: DeleteNetworkInput): Promise<{ network: Network }> {
  requireWriter(caller);
  const network = await visibleNetwork(rt, caller, input.id);
  if (network.projectId === null) requireAdmin(caller);
  else requireMutableIn(caller, network.projectId, notFound(input.id));
  const scope = network.projectId ?? EXTERNAL_SCOPE;
  const metadata = commandMetadata(caller);
  const key = `deleteNetwork:${network.id}:${randomUUID()}`;
  for (let round = 1; ; round++) {
    try {
      const deleted = await rt.db.transaction(async (tx) => {
        // The same lock allocations take: no address can land between the check and the delete.
        await lockStream(tx, networkStream(network.id));
        const { state } = await decideAndAppend<Network | null, NetworkEvent>(rt, networkStream(network.id), networkDecider, (s) => decideNetwork({ type: 'delete', data: { at: now() } }, s), {
          key: `${key}:network`,
          metadata,
          tx,
          rounds: 1,
        });
        await decideAndAppend<NetworkIndex, NetworkIndexEvent>(rt, networkIndexStream(scope), networkIndexDecider, (s) => decideNetworkIndex({ type: 'unregister', data: { networkId: network.id } }, s), {
          key: `${key}:index`,
          metadata,
          tx,
          rounds: 1,
        });
        return state!;
      });
      return { network: deleted };
    } catch (e) {
      if (!(e instanceof WrongExpectedVersion) || round >= 10) throw e;
    }
  }
}

/**
 * What a boot needs before it is recorded: the network its FIXED address comes from (the one asked for,
 * the caller's own and not external, or the project's default network, made on first use) and the
 * project's default security group, which its port's rules come from.
 */
export async function prepareBootNetworking(rt: Runtime, caller: Caller, networkId: string | undefined): Promise<string> {
  await ensureDefaultSecurityGroup(rt, caller, caller.projectId);
  return bootNetworkFor(rt, caller, networkId);
}

async function bootNetworkFor(rt: Runtime, caller: Caller, networkId: string | undefined): Promise<string> {
  if (networkId) {
    const network = await visibleNetwork(rt, caller, networkId);
    if (network.external) {
      throw new StratusError('BAD_USER_INPUT', `${network.name} is external: instances boot on a project network and get floating addresses from it`, {
        issues: [{ path: ['networkId'], message: 'an external network' }],
      });
    }
    return network.id;
  }
  const id = defaultNetworkId(caller.projectId);
  const existing = await readNetwork(rt, id);
  if (existing) {
    if (existing.deleted) {
      throw new StratusError('BAD_USER_INPUT', 'the project deleted its default network: boot with a networkId', { issues: [{ path: ['networkId'], message: 'required' }] });
    }
    return id;
  }
  // Checked at start (server/config.ts): it parses and fits the sizes createNetwork takes.
  const cidr = rt.config.defaultNetworkCidr ?? DEFAULT_NETWORK_CIDR;
  const subnet = parseSubnet(cidr) as Subnet;
  try {
    await recordNetwork(rt, caller, { id, projectId: caller.projectId, name: 'default', subnet, gateway: gatewayFor(subnet), external: false });
  } catch (e) {
    if (e instanceof StratusError && e.code === 'BAD_USER_INPUT') {
      throw new StratusError('BAD_USER_INPUT', `the default network ${cidr} cannot be made (${e.message}): boot with a networkId`, e.details);
    }
    throw e;
  }
  return id;
}

