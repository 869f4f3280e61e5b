import { z } from 'zod';
import { firstHost, ipToNumber, numberToIp, parseSubnet, type Subnet } from './cidr.js';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { Id, Timestamp } from './scalars.js';

export const AddressKind = z.enum(['FIXED', 'FLOATING']);
export type AddressKind = z.infer<typeof AddressKind>;

/**
 * Every event on a `network-<id>` stream: the network itself and its IPAM. Allocations live on the
 * network's own stream and are appended with its version expected, so two concurrent allocations can
 * never both take one address (DESIGN.md invariant 4): the second re-reads and picks another.
 */
export const networkEvents = {
  NetworkCreated: z.object({
    networkId: Id,
    /** Null for an external network: every project takes floating addresses from it. */
    projectId: Id.nullable(),
    name: z.string().min(1).max(63),
    cidr: z.string().min(9).max(18),
    gateway: z.ipv4(),
    external: z.boolean(),
    at: Timestamp,
  }),
  NetworkDeleted: z.object({ at: Timestamp }),
  AddressAllocated: z.object({
    addressId: Id,
    address: z.ipv4(),
    kind: AddressKind,
    /** Who holds it: the instance's project for a FIXED one, the allocating project for a FLOATING one. */
    projectId: Id,
    instanceId: Id.nullable(),
    operationId: Id,
    at: Timestamp,
  }),
  AddressReleased: z.object({ addressId: Id, address: z.ipv4(), operationId: Id, at: Timestamp }),
  /** A FLOATING address now NATs to `fixedAddress`, the instance's FIXED address. */
  AddressAssociated: z.object({ addressId: Id, instanceId: Id, fixedAddress: z.ipv4(), operationId: Id, at: Timestamp }),
  AddressDisassociated: z.object({ addressId: Id, operationId: Id, at: Timestamp }),
} satisfies Record<string, z.ZodType>;
export type NetworkEvent = EventOf<typeof networkEvents>;

export const Address = z.object({
  id: Id,
  address: z.ipv4(),
  networkId: Id,
  kind: AddressKind,
  projectId: Id,
  instanceId: Id.nullable(),
  /** A FLOATING address's NAT target while associated. */
  fixedAddress: z.ipv4().nullable(),
});
export type Address = z.infer<typeof Address>;

export const Network = z.object({
  id: Id,
  projectId: Id.nullable(),
  name: z.string(),
  cidr: z.string(),
  gateway: z.ipv4(),
  external: z.boolean(),
  deleted: z.boolean(),
  createdAt: Timestamp,
  /** The offset in the subnet of the next address never handed out yet. */
  nextFresh: z.number().int().nonnegative(),
  /** Addresses given back, oldest first: reused only once every fresh one is gone (Neutron's habit), so a stale peer meets nobody. */
  released: z.array(z.ipv4()),
  addresses: z.record(Id, Address),
  version: z.number().int().nonnegative(),
});
export type Network = z.infer<typeof Network>;
export type NetworkDeciderState = Network | null;

export type NetworkCommand =
  | { type: 'create'; data: z.infer<typeof networkEvents.NetworkCreated> }
  | { type: 'delete'; data: { at: string } }
  | { type: 'allocate'; data: Omit<z.infer<typeof networkEvents.AddressAllocated>, 'address'> }
  | { type: 'release'; data: { addressId: string; operationId: string; at: string } }
  | { type: 'associate'; data: z.infer<typeof networkEvents.AddressAssociated> }
  | { type: 'disassociate'; data: { addressId: string; operationId: string; at: string } };

export const subnetOf = (network: Pick<Network, 'cidr'>): Subnet => parseSubnet(network.cidr) as Subnet;

/** How many addresses a subnet can hand out: all but the network, broadcast and gateway addresses. */
export const usableAddresses = (network: Pick<Network, 'cidr'>): number => subnetOf(network).size - 3;

/** The address the next allocation takes: the lowest never used, else the one released longest ago. */
export function nextFreeAddress(network: Network): string | undefined {
  const subnet = subnetOf(network);
  const gateway = ipToNumber(network.gateway) - subnet.base;
  let offset = Math.max(network.nextFresh, 1);
  if (offset === gateway) offset++;
  if (offset <= subnet.size - 2) return numberToIp(subnet.base + offset);
  return network.released[0];
}

const notFound = (id?: string) => new StratusError('NOT_FOUND', id ? `network ${id} not found` : 'network not found', id ? { id } : {});

const addressNotFound = (addressId: string) => new StratusError('NOT_FOUND', `address ${addressId} not found`, { id: addressId });

export const addressesInUse = (network: Network): Address[] => Object.values(network.addresses);

/**
 * Every command carries the ids that make it unique (address id, operation id), so a retried activity
 * decides nothing the second time. Refusals change nothing: NO_FREE_ADDRESS when the subnet is used up,
 * CONFLICT while a network still hands out addresses or a floating address is bound elsewhere.
 */
export function decideNetwork(command: NetworkCommand, state: NetworkDeciderState): NetworkEvent[] {
  if (command.type === 'create') {
    if (state) {
      if (state.id === command.data.networkId && state.cidr === command.data.cidr && !state.deleted) return [];
      throw new StratusError('CONFLICT', `network ${state.id} already exists`, { id: state.id });
    }
    return [{ type: 'NetworkCreated', data: command.data }];
  }
  if (!state || state.deleted) throw notFound(state?.id);
  switch (command.type) {
    case 'delete': {
      const inUse = addressesInUse(state);
      if (inUse.length > 0) {
        throw new StratusError('CONFLICT', `network ${state.name} still has ${inUse.length} address(es) in use`, { id: state.id, inUse: inUse.length });
      }
      return [{ type: 'NetworkDeleted', data: command.data }];
    }
    case 'allocate': {
      const { addressId, kind } = command.data;
      if (state.addresses[addressId]) return [];
      if (kind === 'FLOATING' && !state.external) {
        throw new StratusError('BAD_USER_INPUT', `floating addresses come from external networks; ${state.name} is not one`, { networkId: state.id });
      }
      if (kind === 'FIXED' && state.external) {
        throw new StratusError('BAD_USER_INPUT', `${state.name} is external: it hands out floating addresses only`, { networkId: state.id });
      }
      const address = nextFreeAddress(state);
      if (!address) {
        throw new StratusError('NO_FREE_ADDRESS', `network ${state.name} (${state.cidr}) has no address left`, { networkId: state.id, cidr: state.cidr });
      }
      return [{ type: 'AddressAllocated', data: { ...command.data, address } }];
    }
    case 'release': {
      const held = state.addresses[command.data.addressId];
      if (!held) return [];
      if (held.kind === 'FLOATING' && held.instanceId) {
        throw new StratusError('CONFLICT', `address ${held.address} is associated with instance ${held.instanceId}: disassociate it first`, { id: held.id });
      }
      return [{ type: 'AddressReleased', data: { ...command.data, address: held.address } }];
    }
    case 'associate': {
      const held = state.addresses[command.data.addressId];
      if (!held) throw addressNotFound(command.data.addressId);
      if (held.kind !== 'FLOATING') throw new StratusError('BAD_USER_INPUT', `address ${held.address} is FIXED: only floating addresses associate`, { id: held.id });
      if (held.instanceId === command.data.instanceId && held.fixedAddress === command.data.fixedAddress) return [];
      if (held.instanceId) {
        throw new StratusError('CONFLICT', `address ${held.address} is already associated with instance ${held.instanceId}`, { id: held.id });
      }
      return [{ type: 'AddressAssociated', data: command.data }];
    }
    case 'disassociate': {
      const held = state.addresses[command.data.addressId];
      if (!held) throw addressNotFound(command.data.addressId);
      if (held.kind !== 'FLOATING') throw new StratusError('BAD_USER_INPUT', `address ${held.address} is FIXED: only floating addresses disassociate`, { id: held.id });
      if (!held.instanceId) return [];
      return [{ type: 'AddressDisassociated', data: command.data }];
    }
  }
}

export function evolveNetwork(state: NetworkDeciderState, event: NetworkEvent): NetworkDeciderState {
  if (event.type === 'NetworkCreated') {
    const { networkId, at, ...rest } = event.data;
    return { id: networkId, ...rest, deleted: false, createdAt: at, nextFresh: 1, released: [], addresses: {}, version: 1 };
  }
  if (!state) return state;
  const next: Network = { ...state, version: state.version + 1 };
  switch (event.type) {
    case 'NetworkDeleted':
      return { ...next, deleted: true };
    case 'AddressAllocated': {
      const d = event.data;
      const offset = ipToNumber(d.address) - subnetOf(state).base;
      const reused = state.released.includes(d.address);
      return {
        ...next,
        released: reused ? state.released.filter((a) => a !== d.address) : state.released,
        nextFresh: reused ? state.nextFresh : Math.max(state.nextFresh, offset + 1),
        addresses: {
          ...state.addresses,
          [d.addressId]: { id: d.addressId, address: d.address, networkId: state.id, kind: d.kind, projectId: d.projectId, instanceId: d.instanceId, fixedAddress: null },
        },
      };
    }
    case 'AddressReleased': {
      const { [event.data.addressId]: _gone, ...addresses } = state.addresses;
      return { ...next, addresses, released: [...state.released, event.data.address] };
    }
    case 'AddressAssociated': {
      const held = state.addresses[event.data.addressId];
      if (!held) return next;
      return { ...next, addresses: { ...state.addresses, [held.id]: { ...held, instanceId: event.data.instanceId, fixedAddress: event.data.fixedAddress } } };
    }
    case 'AddressDisassociated': {
      const held = state.addresses[event.data.addressId];
      if (!held) return next;
      return { ...next, addresses: { ...state.addresses, [held.id]: { ...held, instanceId: null, fixedAddress: null } } };
    }
  }
}

export const networkDecider: Decider<NetworkDeciderState, NetworkCommand, NetworkEvent> = {
  decide: decideNetwork,
  evolve: evolveNetwork,
  initialState: () => null,
  // A network's stream holds every allocation it ever made; reads fold from a snapshot (activities/events.ts).
  snapshotName: 'network/1',
};

/** The gateway a new network gets: the one asked for, or the first host address. */
export const gatewayFor = (subnet: Subnet, requested?: string): string => requested ?? firstHost(subnet);
