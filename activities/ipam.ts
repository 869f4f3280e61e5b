import type { DomainEvent } from '../domain/events.js';
import { networkIndexStream, networkStream } from '../domain/events.js';
import { StratusError } from '../domain/errors.js';
import { decideNetwork, networkDecider, type Address, type Network, type NetworkCommand, type NetworkEvent } from '../domain/network.js';
import { EXTERNAL_SCOPE, networkIndexDecider } from '../domain/networkIndex.js';
import type { EventMetadata, Queryable } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { decideAndAppend, readFolded, type Fold, type Folded } from './events.js';

/** The first key of the two-key advisory lock IPAM takes; the second is the stream id's hash. */
const IPAM_LOCK_CLASS = 7_510;

/**
 * Read, decide and append on one stream while holding a transaction-scoped advisory lock on it. The
 * expected version alone already makes two writers unable to take one address; the lock makes them
 * queue instead of racing, so 200 concurrent allocations on one network cost 200 appends rather than
 * a storm of version conflicts and retries. The version is still checked: a writer that does not
 * take the lock (a command creating the stream) is caught by it.
 */
export async function lockStream(tx: Queryable, streamId: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [IPAM_LOCK_CLASS, streamId]);
}

export function decideLocked<S, E extends DomainEvent>(
  rt: Pick<Runtime, 'store' | 'db'>,
  streamId: string,
  fold: Fold<S, E>,
  decide: (state: S) => E[],
  options: { key: string; metadata: EventMetadata },
): Promise<Folded<S> & { appended: E[] }> {
  return rt.db.transaction(async (tx) => {
    await lockStream(tx, streamId);
    return decideAndAppend(rt, streamId, fold, decide, { ...options, tx, rounds: 1 });
  });
}

/** Decides one command on a network's stream under its lock. */
export function decideOnNetwork(
  rt: Pick<Runtime, 'store' | 'db'>,
  networkId: string,
  command: (network: Network | null) => NetworkCommand | null,
  options: { key: string; metadata: EventMetadata },
) {
  return decideLocked<Network | null, NetworkEvent>(rt, networkStream(networkId), networkDecider, (s) => {
    const c = command(s);
    return c ? decideNetwork(c, s) : [];
  }, options);
}

export async function readNetwork(rt: Pick<Runtime, 'store'>, networkId: string): Promise<Network | null> {
  return (await readFolded(rt, networkStream(networkId), networkDecider)).state;
}

export async function requireNetwork(rt: Pick<Runtime, 'store'>, networkId: string): Promise<Network> {
  const network = await readNetwork(rt, networkId);
  if (!network || network.deleted) throw new StratusError('NOT_FOUND', `network ${networkId} not found`, { id: networkId });
  return network;
}

/** The live networks of a scope (a project, or EXTERNAL_SCOPE), read from the write side: no projection lag. */
export async function networksOfScope(rt: Pick<Runtime, 'store'>, scopeId: string): Promise<Network[]> {
  const { state } = await readFolded(rt, networkIndexStream(scopeId), networkIndexDecider);
  const networks = await Promise.all(Object.keys(state.networks).map((id) => readNetwork(rt, id)));
  return networks.filter((n): n is Network => n !== null && !n.deleted);
}

/** The networks a project's addresses can be on: its own and the external ones. */
export async function networksVisibleTo(rt: Pick<Runtime, 'store'>, projectId: string): Promise<Network[]> {
  const [own, external] = await Promise.all([networksOfScope(rt, projectId), networksOfScope(rt, EXTERNAL_SCOPE)]);
  return [...own, ...external];
}

/** Every address bound to an instance: its FIXED ones and the FLOATING ones that NAT to it. */
export async function addressesOfInstance(rt: Pick<Runtime, 'store'>, instance: { id: string; projectId: string }): Promise<Address[]> {
  const networks = await networksVisibleTo(rt, instance.projectId);
  return networks.flatMap((n) => Object.values(n.addresses).filter((a) => a.instanceId === instance.id));
}
