import { randomUUID } from 'node:crypto';
import type { AddressRequest } from '../../activities/index.js';
import { networksVisibleTo } from '../../activities/ipam.js';
import { StratusError } from '../../domain/errors.js';
import { canMutate, canRead, type Caller } from '../../domain/identity.js';
import { contains } from '../../domain/cidr.js';
import { subnetOf, type Address, type Network } from '../../domain/network.js';
import type { AllocateIpInput, AssociateIpInput, DisassociateIpInput, ReleaseIpInput } from '../../domain/networkInputs.js';
import type { Runtime } from '../../server/runtime.js';
import { requireMutableIn, requireWriter } from './access.js';
import { visibleNetwork } from './networks.js';
import { readInstanceState, type LifecycleResult } from './operations.js';
import { startResourceOperation } from './resourceOperations.js';

export type AddressResult = LifecycleResult;
/** release, associate and disassociate name an existing address: the payload carries it as it is when the operation starts. */
export type HeldAddressResult = LifecycleResult & { address: Address };

const instanceNotFound = (id: string) => () => new StratusError('NOT_FOUND', `instance ${id} not found`, { id });

/** An instance the caller may change, and not deleted: the target of an allocation or association. */
async function targetInstance(rt: Runtime, caller: Caller, id: string) {
  const { state } = await readInstanceState(rt, id);
  if (!state || state.state === 'DELETED') throw instanceNotFound(id)();
  requireMutableIn(caller, state.projectId, instanceNotFound(id));
  return state;
}

/**
 * The address named by its IP among the networks the caller's project can hold addresses on (read from
 * the write side: an address allocated a moment ago is found). Another project's address does not exist.
 * An IP outside the named network's subnet is bad input, not a missing address: that network could
 * never hold it, and nothing is written. Unnamed, an IP in none of the caller's networks is NOT_FOUND,
 * as another project's address is.
 */
async function findAddress(rt: Runtime, caller: Caller, ref: { address: string; networkId?: string | undefined }): Promise<{ held: Address; network: Network }> {
  const named = ref.networkId ? await visibleNetwork(rt, caller, ref.networkId) : undefined;
  if (named && !contains(subnetOf(named), ref.address)) {
    throw new StratusError('BAD_USER_INPUT', `${ref.address} is not in network ${named.name} (${named.cidr})`, { issues: [{ path: ['address'], message: `outside ${named.cidr}` }] });
  }
  const networks = named ? [named] : await networksVisibleTo(rt, caller.projectId);
  for (const network of networks) {
    const held = Object.values(network.addresses).find((a) => a.address === ref.address && canRead(caller, a.projectId));
    if (held) {
      if (!canMutate(caller, held.projectId)) throw new StratusError('FORBIDDEN', 'a reader token cannot change anything');
      return { held, network };
    }
  }
  throw new StratusError('NOT_FOUND', `address ${ref.address} not found`, { address: ref.address });
}

/**
 * allocateIp: FIXED from one of the project's networks (optionally for an instance of it), FLOATING from
 * an external network (optionally associated with an instance at once). Which address is the
 * workflow's: IPAM decides on the network's stream, and an exhausted network fails the operation with
 * NO_FREE_ADDRESS, changing nothing.
 */
export async function allocateIp(rt: Runtime, caller: Caller, input: AllocateIpInput): Promise<AddressResult> {
  requireWriter(caller);
  const network = await visibleNetwork(rt, caller, input.networkId);
  if (input.kind === 'FLOATING' && !network.external) {
    throw new StratusError('BAD_USER_INPUT', `floating addresses come from external networks; ${network.name} is not one`, { issues: [{ path: ['networkId'], message: 'not external' }] });
  }
  if (input.kind === 'FIXED' && network.external) {
    throw new StratusError('BAD_USER_INPUT', `${network.name} is external: it hands out floating addresses only`, { issues: [{ path: ['kind'], message: 'FIXED on an external network' }] });
  }
  if (network.projectId !== null) requireMutableIn(caller, network.projectId, () => new StratusError('NOT_FOUND', `network ${network.id} not found`));
  const instance = input.instanceId ? await targetInstance(rt, caller, input.instanceId) : undefined;
  if (instance && network.projectId !== null && instance.projectId !== network.projectId) throw instanceNotFound(instance.id)();
  const projectId = network.projectId ?? instance?.projectId ?? caller.projectId;
  const request: AddressRequest = { networkId: network.id, kind: input.kind, projectId, ...(instance ? { instanceId: instance.id } : {}) };
  return startResourceOperation(rt, caller, 'ALLOCATE_IP', randomUUID(), projectId, { address: request }, input.clientRequestId);
}

/** releaseIp: back to the pool. A FIXED address its instance still uses is a CONFLICT (delete the instance). */
export async function releaseIp(rt: Runtime, caller: Caller, input: ReleaseIpInput): Promise<HeldAddressResult> {
  requireWriter(caller);
  const { held, network } = await findAddress(rt, caller, input);
  if (held.kind === 'FIXED' && held.instanceId) {
    const { state } = await readInstanceState(rt, held.instanceId);
    if (state && state.state !== 'DELETED') {
      throw new StratusError('CONFLICT', `address ${held.address} is instance ${held.instanceId}'s: delete the instance to release it`, { id: held.id });
    }
  }
  const started = await startResourceOperation(rt, caller, 'RELEASE_IP', held.id, held.projectId, { address: { networkId: network.id, projectId: held.projectId } }, input.clientRequestId);
  return { ...started, address: held };
}

/** associateIp: a FLOATING address of the project NATs to one of its instances' FIXED address. */
export async function associateIp(rt: Runtime, caller: Caller, input: AssociateIpInput): Promise<HeldAddressResult> {
  requireWriter(caller);
  const { held, network } = await findAddress(rt, caller, input);
  if (held.kind !== 'FLOATING') throw new StratusError('BAD_USER_INPUT', `address ${held.address} is FIXED: only floating addresses associate`, { issues: [{ path: ['address'], message: 'FIXED' }] });
  const instance = await targetInstance(rt, caller, input.instanceId);
  if (instance.projectId !== held.projectId) throw instanceNotFound(instance.id)();
  if (held.instanceId && held.instanceId !== instance.id) {
    throw new StratusError('CONFLICT', `address ${held.address} is already associated with instance ${held.instanceId}`, { id: held.id });
  }
  const request: AddressRequest = { networkId: network.id, projectId: held.projectId, instanceId: instance.id };
  const started = await startResourceOperation(rt, caller, 'ASSOCIATE_IP', held.id, held.projectId, { address: request }, input.clientRequestId);
  return { ...started, address: held };
}

/** disassociateIp: the FLOATING address stops NATing and stays allocated to the project. */
export async function disassociateIp(rt: Runtime, caller: Caller, input: DisassociateIpInput): Promise<HeldAddressResult> {
  requireWriter(caller);
  const { held, network } = await findAddress(rt, caller, input);
  if (held.kind !== 'FLOATING') throw new StratusError('BAD_USER_INPUT', `address ${held.address} is FIXED: only floating addresses disassociate`, { issues: [{ path: ['address'], message: 'FIXED' }] });
  const started = await startResourceOperation(rt, caller, 'DISASSOCIATE_IP', held.id, held.projectId, { address: { networkId: network.id, projectId: held.projectId } }, input.clientRequestId);
  return { ...started, address: held };
}
