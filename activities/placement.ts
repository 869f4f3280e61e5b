import { StratusError } from '../domain/errors.js';
import { hostStream } from '../domain/events.js';
import type { Host } from '../domain/host.js';
import type { Resources } from '../domain/resources.js';
import type { EventMetadata } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { appendToHost, candidateHostIds, hostsHolding, listInventoryHosts } from './hostInventory.js';

/** Every registered host with its claims (admin reads and tests; placement never lists them all). */
export async function readHosts(rt: Pick<Runtime, 'db' | 'store'>): Promise<Host[]> {
  return listInventoryHosts(rt);
}

/** One host, for its agent's endpoint: the registration (the first event) is all that is needed. */
export async function readHostEndpoint(rt: Pick<Runtime, 'store'>, hostId: string) {
  const [first] = await rt.store.readStream(hostStream(hostId), { limit: 1 });
  if (!first || first.type !== 'HostRegistered') throw new StratusError('NOT_FOUND', `host ${hostId} not found`, { hostId });
  return { hostId, host: first.data.address, port: first.data.port, fingerprint: first.data.hostKeyFingerprint };
}

export interface ClaimRequest {
  instanceId: string;
  operationId: string;
  resources: Resources;
  /** Names the write (event ids derive from it with the host id). */
  key: string;
  metadata: EventMetadata;
  /** Hosts never to place on (a migration's source, hosts a reschedule already failed on). */
  excludeHostIds?: readonly string[];
}

/** How many of the best hosts a boot that lost a race spreads over (Nova's host_subset_size, grown per round). */
const SUBSET_PER_ROUND = 4;
const MAX_SUBSET = 32;

/**
 * Nova's scheduler with a claim: ask the inventory for the best few hosts that fit (one index scan,
 * whatever the size of the cloud), claim on the best with the host stream's version expected. A claim
 * that loses a race re-reads and re-places: racing boots would otherwise all pick the same best host
 * and lose to each other in turn, so each lost round spreads the next pick over a wider subset of the
 * best hosts. A retry after a claim landed finds it and keeps it, so an instance never holds two hosts.
 * None fits: NO_VALID_HOST.
 */
export async function claimHostCapacity(rt: Pick<Runtime, 'db' | 'store'>, request: ClaimRequest): Promise<string> {
  const { instanceId, operationId, resources } = request;
  let lastRefusal: StratusError | undefined;
  for (let round = 0; round < 200; round++) {
    const held = (await hostsHolding(rt, instanceId)).find((h) => !request.excludeHostIds?.includes(h));
    if (held) return held;
    const subset = Math.min(MAX_SUBSET, 1 + SUBSET_PER_ROUND * round);
    const candidates = await candidateHostIds(rt, { resources, limit: subset, ...(request.excludeHostIds ? { excludeHostIds: request.excludeHostIds } : {}) });
    if (candidates.length === 0) {
      throw new StratusError('NO_VALID_HOST', `no host has room for ${resources.vcpus} vCPU, ${resources.memoryMb} MB, ${resources.diskGb} GB`, {
        reason: lastRefusal?.details.reason ?? 'insufficient-capacity',
        requested: resources,
      });
    }
    const hostId = candidates[Math.floor(Math.random() * candidates.length)]!;
    try {
      await appendToHost(rt, hostId, { type: 'claim', data: { instanceId, operationId, resources } }, {
        key: `${request.key}:${hostId}`,
        metadata: request.metadata,
        rounds: 1,
      });
      return hostId;
    } catch (e) {
      // A version conflict (WrongExpectedVersion is a CONFLICT) or the host filled up since the query.
      if (e instanceof StratusError && (e.code === 'CONFLICT' || e.code === 'NO_VALID_HOST')) {
        if (e.code === 'NO_VALID_HOST') lastRefusal = e;
        // Lost the race for this host: back off a little so racing boots do not spin in lockstep.
        await new Promise((r) => setTimeout(r, Math.random() * 5 * Math.min(round + 1, 10)));
        continue;
      }
      throw e;
    }
  }
  throw new StratusError('CONFLICT', `placement for instance ${instanceId} kept losing races; try again`, { instanceId });
}

/** Releases whatever `instanceId` holds on any host (normally one). Returns the hosts released. */
export async function releaseHostClaims(
  rt: Pick<Runtime, 'db' | 'store'>,
  request: { instanceId: string; key: string; metadata: EventMetadata },
): Promise<string[]> {
  const holding = await hostsHolding(rt, request.instanceId);
  for (const hostId of holding) {
    await appendToHost(rt, hostId, { type: 'release', data: { instanceId: request.instanceId } }, {
      key: `${request.key}:${hostId}`,
      metadata: request.metadata,
      rounds: 20,
    });
  }
  return holding;
}

/**
 * A claim on one named host (a migration's or resize's target), decided on that host's stream like any
 * other claim. A claim already held there for the instance is kept, so a retry never double-counts.
 */
export async function claimOnHost(rt: Pick<Runtime, 'db' | 'store'>, hostId: string, request: ClaimRequest): Promise<void> {
  const { instanceId, operationId, resources } = request;
  await appendToHost(rt, hostId, { type: 'claim', data: { instanceId, operationId, resources } }, {
    key: `${request.key}:${hostId}`,
    metadata: request.metadata,
    rounds: 50,
  });
}

/**
 * Picks a migration target and claims on it: the named host when the operator chose one, else the
 * scheduler's best among the UP hosts of the same hypervisor kind, never the source. A host that filled
 * up since the inventory was read is out for this migration; none left is NO_VALID_HOST.
 */
export async function claimMigrationTarget(
  rt: Pick<Runtime, 'db' | 'store'>,
  request: ClaimRequest & { sourceHostId: string; hypervisor: string; targetHostId?: string | undefined },
): Promise<string> {
  const { instanceId, resources, sourceHostId } = request;
  if (request.targetHostId) {
    await claimOnHost(rt, request.targetHostId, request);
    return request.targetHostId;
  }
  const tried = [sourceHostId];
  for (let round = 0; round < 200; round++) {
    const held = (await hostsHolding(rt, instanceId)).find((h) => h !== sourceHostId);
    if (held) return held;
    const [hostId] = await candidateHostIds(rt, { resources, excludeHostIds: tried, hypervisor: request.hypervisor, limit: 1 });
    if (!hostId) {
      throw new StratusError('NO_VALID_HOST', `no other ${request.hypervisor} host has room for ${resources.vcpus} vCPU, ${resources.memoryMb} MB, ${resources.diskGb} GB`, {
        reason: 'insufficient-capacity',
        requested: resources,
      });
    }
    try {
      await claimOnHost(rt, hostId, request);
      return hostId;
    } catch (e) {
      if (!(e instanceof StratusError && e.code === 'NO_VALID_HOST')) throw e;
      tried.push(hostId);
    }
  }
  throw new StratusError('CONFLICT', `placement for instance ${instanceId} kept losing races; try again`, { instanceId });
}

/** Releases what `instanceId` holds on one host only (the source after a migration, the target after a failed one). */
export async function releaseClaimOn(
  rt: Pick<Runtime, 'db' | 'store'>,
  hostId: string,
  request: { instanceId: string; key: string; metadata: EventMetadata },
): Promise<void> {
  await appendToHost(rt, hostId, { type: 'release', data: { instanceId: request.instanceId } }, {
    key: `${request.key}:${hostId}`,
    metadata: request.metadata,
    rounds: 50,
  });
}

/** Changes the instance's claim on one host to `resources` in one event (a resize in place, or its undo). */
export async function resizeClaimOn(rt: Pick<Runtime, 'db' | 'store'>, hostId: string, request: ClaimRequest): Promise<void> {
  const { instanceId, operationId, resources } = request;
  await appendToHost(rt, hostId, { type: 'resizeClaim', data: { instanceId, operationId, resources } }, {
    key: `${request.key}:${hostId}`,
    metadata: request.metadata,
    rounds: 50,
  });
}
