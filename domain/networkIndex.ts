import { z } from 'zod';
import { overlaps, parseSubnet, type Subnet } from './cidr.js';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { idNamespaces, nameBasedUuid } from './nameBasedId.js';
import { Id } from './scalars.js';

/**
 * The networks of one project (or of the external scope), on a `networks-<scope>` stream. A new
 * network registers here with the index's version expected, so two concurrent creations cannot both
 * pass the overlap check; it is also how the write side lists a project's networks without waiting
 * for a projection.
 */
export const networkIndexEvents = {
  NetworkRegistered: z.object({ networkId: Id, cidr: z.string(), name: z.string() }),
  NetworkUnregistered: z.object({ networkId: Id }),
} satisfies Record<string, z.ZodType>;
export type NetworkIndexEvent = EventOf<typeof networkIndexEvents>;

export const NetworkIndex = z.object({
  networks: z.record(Id, z.object({ cidr: z.string(), name: z.string() })),
  version: z.number().int().nonnegative(),
});
export type NetworkIndex = z.infer<typeof NetworkIndex>;

export type NetworkIndexCommand =
  | { type: 'register'; data: z.infer<typeof networkIndexEvents.NetworkRegistered> }
  | { type: 'unregister'; data: { networkId: string } };

/** The scope external networks share: overlaps among them are refused just as within a project. */
export const EXTERNAL_SCOPE = nameBasedUuid(idNamespaces.network, 'external');

export function decideNetworkIndex(command: NetworkIndexCommand, state: NetworkIndex): NetworkIndexEvent[] {
  switch (command.type) {
    case 'register': {
      const { networkId, cidr } = command.data;
      if (state.networks[networkId]) return [];
      const subnet = parseSubnet(cidr) as Subnet;
      const clash = Object.entries(state.networks).find(([, n]) => overlaps(subnet, parseSubnet(n.cidr) as Subnet));
      if (clash) {
        throw new StratusError('BAD_USER_INPUT', `${cidr} overlaps network ${clash[1].name} (${clash[1].cidr})`, {
          issues: [{ path: ['cidr'], message: `overlaps ${clash[1].cidr}` }],
          networkId: clash[0],
        });
      }
      return [{ type: 'NetworkRegistered', data: command.data }];
    }
    case 'unregister':
      return state.networks[command.data.networkId] ? [{ type: 'NetworkUnregistered', data: command.data }] : [];
  }
}

export function evolveNetworkIndex(state: NetworkIndex, event: NetworkIndexEvent): NetworkIndex {
  switch (event.type) {
    case 'NetworkRegistered':
      return { networks: { ...state.networks, [event.data.networkId]: { cidr: event.data.cidr, name: event.data.name } }, version: state.version + 1 };
    case 'NetworkUnregistered': {
      const { [event.data.networkId]: _gone, ...networks } = state.networks;
      return { networks, version: state.version + 1 };
    }
  }
}

export const networkIndexDecider: Decider<NetworkIndex, NetworkIndexCommand, NetworkIndexEvent> = {
  decide: decideNetworkIndex,
  evolve: evolveNetworkIndex,
  initialState: () => ({ networks: {}, version: 0 }),
};

/** The project's default network has a name-based id, so two first boots racing to make it make one. */
export const defaultNetworkId = (projectId: string): string => nameBasedUuid(idNamespaces.network, `default\n${projectId}`);
/** The default network's subnet unless STRATUS_DEFAULT_NETWORK_CIDR names another (server/config.ts). */
export const DEFAULT_NETWORK_CIDR = '10.0.0.0/24';
