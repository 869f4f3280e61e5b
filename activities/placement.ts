import { StratusError } from '../domain/errors.js';
import { hostStream } from '../domain/events.js';
import { decideHost, hostDecider, type Host, type HostEvent } from '../domain/host.js';
import { candidateHosts } from '../domain/placement.js';
import type { Resources } from '../domain/resources.js';
import { checkpointOf, type EventMetadata } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { decideAndAppend, readFolded } from './events.js';

let readModelHasHosts = false;

/**
 * The ids of every registered host. Placement needs only the ids from here: each candidate's claims are
 * read from its own stream, which is the truth the claim is decided against. F's `rm_hosts` table is the
 * cheap source; until it exists (or while it is still empty, before its projection ran) the `host-`
 * streams' HostRegistered events are scanned from the log instead, so the write side never depends on
 * the projections being up.
 */
export async function listHostIds(rt: Pick<Runtime, 'db' | 'store'>): Promise<string[]> {
  if (!readModelHasHosts) {
    const [row] = await rt.db.query<{ present: boolean }>(`SELECT to_regclass('rm_hosts') IS NOT NULL AS present`);
    readModelHasHosts = row?.present === true;
  }
  if (readModelHasHosts) {
    const rows = await rt.db.query<{ id: string }>('SELECT id::text AS id FROM rm_hosts');
    if (rows.length > 0) return rows.map((r) => r.id);
  }
  const ids: string[] = [];
  for (let after = undefined as ReturnType<typeof checkpointOf> | undefined; ; ) {
    const page = await rt.store.readAll({ streamPrefix: 'host-', limit: 1000, ...(after ? { after } : {}) });
    for (const e of page) if (e.type === 'HostRegistered') ids.push(e.data.hostId);
    if (page.length < 1000) return ids;
    after = checkpointOf(page.at(-1)!);
  }
}

/** Every registered host folded from its stream (claims, allocation and the version to expect). */
export async function readHosts(rt: Pick<Runtime, 'db' | 'store'>): Promise<Host[]> {
  const ids = await listHostIds(rt);
  const hosts = await Promise.all(ids.map((id) => readFolded(rt, hostStream(id), hostDecider)));
  return hosts.flatMap((h) => (h.state ? [h.state] : []));
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
}

/**
 * Nova's scheduler with a claim: weigh the candidates, claim on the best with the host stream's version
 * expected; a claim that loses a race re-reads and re-places (the host may now be full, or another may be
 * better). A retry after a claim landed finds the claim and keeps it, so an instance never holds two hosts.
 * None fits: NO_VALID_HOST.
 */
export async function claimHostCapacity(rt: Pick<Runtime, 'db' | 'store'>, request: ClaimRequest): Promise<string> {
  const { instanceId, operationId, resources } = request;
  let lastRefusal: StratusError | undefined;
  for (let round = 0; round < 200; round++) {
    const hosts = await readHosts(rt);
    const held = hosts.find((h) => h.claims[instanceId]);
    if (held) return held.id;
    const candidates = candidateHosts(hosts, resources);
    if (candidates.length === 0) {
      throw new StratusError('NO_VALID_HOST', `no host has room for ${resources.vcpus} vCPU, ${resources.memoryMb} MB, ${resources.diskGb} GB`, {
        reason: lastRefusal?.details.reason ?? 'insufficient-capacity',
        requested: resources,
        hostsConsidered: hosts.length,
      });
    }
    const hostId = candidates[0]!;
    const host = hosts.find((h) => h.id === hostId)!;
    try {
      await decideAndAppend<Host | null, HostEvent>(
        rt,
        hostStream(hostId),
        hostDecider,
        (state) => decideHost({ type: 'claim', data: { instanceId, operationId, resources } }, state),
        { key: `${request.key}:${hostId}`, metadata: request.metadata, known: { state: host, version: host.version }, rounds: 1 },
      );
      return hostId;
    } catch (e) {
      if (e instanceof StratusError && (e.code === 'CONFLICT' || e.code === 'NO_VALID_HOST')) {
        if (e.code === 'NO_VALID_HOST') lastRefusal = e;
        // Lost the race for this host: back off a little so fifty racing boots do not spin in lockstep.
        await new Promise((r) => setTimeout(r, Math.random() * 20 * Math.min(round + 1, 10)));
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
  const hosts = await readHosts(rt);
  const holding = hosts.filter((h) => h.claims[request.instanceId]);
  for (const h of holding) {
    await decideAndAppend<Host | null, HostEvent>(
      rt,
      hostStream(h.id),
      hostDecider,
      (state) => decideHost({ type: 'release', data: { instanceId: request.instanceId } }, state),
      { key: `${request.key}:${h.id}`, metadata: request.metadata, rounds: 20 },
    );
  }
  return holding.map((h) => h.id);
}

/**
 * A claim on one named host (a migration's or resize's target), decided on that host's stream like any
 * other claim. A claim already held there for the instance is kept, so a retry never double-counts.
 */
export async function claimOnHost(rt: Pick<Runtime, 'db' | 'store'>, hostId: string, request: ClaimRequest): Promise<void> {
  const { instanceId, operationId, resources } = request;
  await decideAndAppend<Host | null, HostEvent>(
    rt,
    hostStream(hostId),
    hostDecider,
    (state) => decideHost({ type: 'claim', data: { instanceId, operationId, resources } }, state),
    { key: `${request.key}:${hostId}`, metadata: request.metadata, rounds: 50 },
  );
}

/**
 * Picks a migration target and claims on it: the named host when the operator chose one, else the
 * scheduler's best among the UP hosts of the same hypervisor kind, never the source. A claim lost to a
 * race moves on to the next candidate; none left is NO_VALID_HOST.
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
  const tried = new Set<string>([sourceHostId]);
  for (let round = 0; round < 200; round++) {
    const hosts = (await readHosts(rt)).filter((h) => h.hypervisor === request.hypervisor);
    const held = hosts.find((h) => h.id !== sourceHostId && h.claims[instanceId]);
    if (held) return held.id;
    const [hostId] = candidateHosts(hosts, resources, { excludeHostIds: tried });
    if (!hostId) {
      throw new StratusError('NO_VALID_HOST', `no other ${request.hypervisor} host has room for ${resources.vcpus} vCPU, ${resources.memoryMb} MB, ${resources.diskGb} GB`, {
        reason: 'insufficient-capacity',
        requested: resources,
        hostsConsidered: hosts.length - 1,
      });
    }
    try {
      await claimOnHost(rt, hostId, request);
      return hostId;
    } catch (e) {
      if (!(e instanceof StratusError && e.code === 'NO_VALID_HOST')) throw e;
      // Filled up since it was read: this host is out for this migration, try the next.
      tried.add(hostId);
    }
  }
  throw new StratusError('CONFLICT', `placement for instance ${instanceId} kept losing races; try again`, { instanceId });
}

/** Releases what `instanceId` holds on one host only (the source after a migration, the target after a failed one). */
export async function releaseClaimOn(
  rt: Pick<Runtime, 'store'>,
  hostId: string,
  request: { instanceId: string; key: string; metadata: EventMetadata },
): Promise<void> {
  await decideAndAppend<Host | null, HostEvent>(
    rt,
    hostStream(hostId),
    hostDecider,
    (state) => decideHost({ type: 'release', data: { instanceId: request.instanceId } }, state),
    { key: `${request.key}:${hostId}`, metadata: request.metadata, rounds: 50 },
  );
}

/** Changes the instance's claim on one host to `resources` in one event (a resize in place, or its undo). */
export async function resizeClaimOn(rt: Pick<Runtime, 'store'>, hostId: string, request: ClaimRequest): Promise<void> {
  const { instanceId, operationId, resources } = request;
  await decideAndAppend<Host | null, HostEvent>(
    rt,
    hostStream(hostId),
    hostDecider,
    (state) => decideHost({ type: 'resizeClaim', data: { instanceId, operationId, resources } }, state),
    { key: `${request.key}:${hostId}`, metadata: request.metadata, rounds: 50 },
  );
}
