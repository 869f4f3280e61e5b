import { z } from 'zod';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { Resources, addResources, fitsIn, noResources, subtractResources } from './resources.js';
import { Id, Timestamp } from './scalars.js';

export const HostState = z.enum(['UP', 'DOWN', 'MAINTENANCE']);
export type HostState = z.infer<typeof HostState>;

export const Hypervisor = z.enum(['sim', 'qemu']);
export type Hypervisor = z.infer<typeof Hypervisor>;

/** OpenSSH's host key fingerprint: `SHA256:` and the unpadded base64 of a 32-byte digest. */
export const HostKeyFingerprint = z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'a fingerprint is SHA256: followed by 43 base64 characters');

/** Every event on a `host-<id>` stream. */
export const hostEvents = {
  HostRegistered: z.object({
    hostId: Id,
    name: z.string().min(1).max(63),
    address: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65535),
    hostKeyFingerprint: HostKeyFingerprint,
    capacity: Resources,
    hypervisor: Hypervisor,
    at: Timestamp,
  }),
  /** `reason` says why when the controller changed it by itself (`agent-unreachable`). */
  HostStateChanged: z.object({ state: HostState, at: Timestamp, reason: z.string().optional() }),
  HostCapacityClaimed: z.object({ instanceId: Id, operationId: Id, resources: Resources }),
  HostCapacityReleased: z.object({ instanceId: Id }),
  /** A resize in place: the instance's claim becomes `resources`, in one event, so no moment holds both. */
  HostClaimResized: z.object({ instanceId: Id, operationId: Id, resources: Resources }),
} satisfies Record<string, z.ZodType>;
export type HostEvent = EventOf<typeof hostEvents>;

export const HostClaim = z.object({ operationId: Id, resources: Resources });
export type HostClaim = z.infer<typeof HostClaim>;

export const Host = z.object({
  id: Id,
  name: z.string(),
  address: z.string(),
  port: z.number().int(),
  hostKeyFingerprint: z.string(),
  hypervisor: Hypervisor,
  state: HostState,
  capacity: Resources,
  /** Always the sum of `claims`: kept by `evolve`, never set from outside. */
  allocated: Resources,
  claims: z.record(Id, HostClaim),
  registeredAt: Timestamp,
  /** Why the host is in its state when the controller put it there (a DOWN the health check decided). */
  stateReason: z.string().nullable().optional(),
  version: z.number().int().nonnegative(),
});
export type Host = z.infer<typeof Host>;

export type HostDeciderState = Host | null;

export type HostCommand =
  | { type: 'register'; data: z.infer<typeof hostEvents.HostRegistered> }
  | { type: 'setState'; data: { state: HostState; at: string; reason?: string } }
  | { type: 'claim'; data: { instanceId: string; operationId: string; resources: Resources } }
  | { type: 'release'; data: { instanceId: string } }
  | { type: 'resizeClaim'; data: { instanceId: string; operationId: string; resources: Resources } };

/** What is left to claim on a host. */
export const freeResources = (host: Pick<Host, 'capacity' | 'allocated'>): Resources => subtractResources(host.capacity, host.allocated);

/**
 * A claim is decided against the stream's current version and appended with that version expected,
 * so two concurrent claims on one host cannot both pass: the loser re-reads and decides again.
 * Refusals are `NO_VALID_HOST` with a `reason`, so the placement loop can try the next candidate.
 */
export function decideHost(command: HostCommand, state: HostDeciderState): HostEvent[] {
  if (command.type === 'register') {
    if (state) throw new StratusError('CONFLICT', `host ${state.id} is already registered`, { id: state.id });
    return [{ type: 'HostRegistered', data: command.data }];
  }
  if (!state) throw new StratusError('NOT_FOUND', 'host not found');
  switch (command.type) {
    case 'setState':
      return state.state === command.data.state ? [] : [{ type: 'HostStateChanged', data: command.data }];
    case 'claim': {
      const { instanceId, resources } = command.data;
      // Already claimed for this instance: a retried claim must not double-count.
      if (state.claims[instanceId]) return [];
      if (state.state !== 'UP') {
        throw new StratusError('NO_VALID_HOST', `host ${state.name} is ${state.state}`, { reason: 'host-not-up', hostId: state.id });
      }
      const free = freeResources(state);
      if (!fitsIn(resources, free)) {
        throw new StratusError('NO_VALID_HOST', `host ${state.name} lacks capacity`, {
          reason: 'insufficient-capacity',
          hostId: state.id,
          requested: resources,
          free,
        });
      }
      return [{ type: 'HostCapacityClaimed', data: command.data }];
    }
    case 'release':
      return state.claims[command.data.instanceId] ? [{ type: 'HostCapacityReleased', data: command.data }] : [];
    case 'resizeClaim': {
      const { instanceId, operationId, resources } = command.data;
      const claim = state.claims[instanceId];
      if (!claim) throw new StratusError('CONFLICT', `instance ${instanceId} holds nothing on host ${state.name}`, { hostId: state.id });
      if (claim.operationId === operationId && sameResources(claim.resources, resources)) return [];
      // Growing needs the room a new claim would; shrinking (or a resize back, on undo) always fits.
      const free = addResources(freeResources(state), claim.resources);
      const grows = (['vcpus', 'memoryMb', 'diskGb'] as const).some((k) => resources[k] > claim.resources[k]);
      if (grows && state.state !== 'UP') {
        throw new StratusError('NO_VALID_HOST', `host ${state.name} is ${state.state}`, { reason: 'host-not-up', hostId: state.id });
      }
      if (grows && !fitsIn(resources, free)) {
        throw new StratusError('NO_VALID_HOST', `host ${state.name} lacks capacity`, { reason: 'insufficient-capacity', hostId: state.id, requested: resources, free });
      }
      return [{ type: 'HostClaimResized', data: command.data }];
    }
  }
}

const sameResources = (a: Resources, b: Resources) => a.vcpus === b.vcpus && a.memoryMb === b.memoryMb && a.diskGb === b.diskGb;

export function evolveHost(state: HostDeciderState, event: HostEvent): HostDeciderState {
  if (event.type === 'HostRegistered') {
    const { hostId, at, ...rest } = event.data;
    // A registered host is schedulable at once; an operator or a failed health check takes it out.
    return { id: hostId, ...rest, state: 'UP', allocated: noResources, claims: {}, registeredAt: at, version: 1 };
  }
  if (!state) return state;
  const version = state.version + 1;
  switch (event.type) {
    case 'HostStateChanged':
      return { ...state, state: event.data.state, stateReason: event.data.reason ?? null, version };
    case 'HostCapacityClaimed': {
      const { instanceId, operationId, resources } = event.data;
      if (state.claims[instanceId]) return { ...state, version };
      return {
        ...state,
        claims: { ...state.claims, [instanceId]: { operationId, resources } },
        allocated: addResources(state.allocated, resources),
        version,
      };
    }
    case 'HostCapacityReleased': {
      const claim = state.claims[event.data.instanceId];
      if (!claim) return { ...state, version };
      const { [event.data.instanceId]: _released, ...claims } = state.claims;
      return { ...state, claims, allocated: subtractResources(state.allocated, claim.resources), version };
    }
    case 'HostClaimResized': {
      const claim = state.claims[event.data.instanceId];
      if (!claim) return { ...state, version };
      const { operationId, resources } = event.data;
      return {
        ...state,
        claims: { ...state.claims, [event.data.instanceId]: { operationId, resources } },
        allocated: addResources(subtractResources(state.allocated, claim.resources), resources),
        version,
      };
    }
  }
}

export const hostDecider: Decider<HostDeciderState, HostCommand, HostEvent> = {
  decide: decideHost,
  evolve: evolveHost,
  initialState: () => null,
};
