import type { Decider } from '../domain/decider.js';
import { hostStream } from '../domain/events.js';
import { freeResources, hostDecider, type Host, type HostCommand, type HostEvent } from '../domain/host.js';
import type { Resources } from '../domain/resources.js';
import { WrongExpectedVersion, type EventMetadata, type Migration, type Queryable } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { eventIdFor, type Folded } from './events.js';

/**
 * The write side's snapshot of every host stream, kept so that placement costs the same with 10 hosts
 * or 1,000, and with 20 claims per host or 2,000. Each host append commits in one transaction with the
 * row it changes, so the row is never ahead of the log. It may lag it (a host stream appended before
 * this table existed): every read folds the stream's tail after the row's version, so a decision is
 * always made on the whole stream, and `refreshHostInventory` brings lagging rows up at start-up.
 * The table is a cache of the log, not a second truth: dropping it and refreshing gives it back whole.
 *
 * `host_claims` answers "which host holds this instance" with one index probe, which releasing a claim
 * and a retried placement both ask.
 */
export const hostInventoryMigrations: Migration[] = [
  {
    id: 'placement/host-inventory/001',
    sql: `CREATE TABLE host_inventory (
        host_id uuid PRIMARY KEY,
        name text NOT NULL,
        address text NOT NULL,
        port integer NOT NULL,
        state text NOT NULL,
        hypervisor text NOT NULL,
        capacity_vcpus integer NOT NULL,
        capacity_memory_mb integer NOT NULL,
        capacity_disk_gb integer NOT NULL,
        free_vcpus integer NOT NULL,
        free_memory_mb integer NOT NULL,
        free_disk_gb integer NOT NULL,
        version integer NOT NULL,
        host jsonb NOT NULL
      );
      -- Placement's one query: UP hosts by free memory, most first (Nova's RAM weigher); the scan stops
      -- at the first few rows that fit, however many hosts there are.
      CREATE INDEX host_inventory_placement ON host_inventory (state, free_memory_mb DESC, host_id);
      CREATE INDEX host_inventory_endpoint ON host_inventory (address, port);
      CREATE INDEX host_inventory_name ON host_inventory (name);
      CREATE TABLE host_claims (
        instance_id uuid NOT NULL,
        host_id uuid NOT NULL,
        PRIMARY KEY (instance_id, host_id)
      );`,
  },
];

type HostFolded = Folded<Host | null>;

/** One host: its inventory row, plus whatever the stream holds beyond it. */
export async function readHost(rt: Pick<Runtime, 'db' | 'store'>, hostId: string, tx?: Queryable): Promise<HostFolded> {
  const q = tx ?? rt.db;
  const [row] = await q.query<{ version: number; host: Host }>('SELECT version, host FROM host_inventory WHERE host_id = $1', [hostId]);
  let state: Host | null = row?.host ?? null;
  let version = row?.version ?? 0;
  const tail = await rt.store.readStream(hostStream(hostId), { fromVersion: version + 1, ...(tx ? { tx } : {}) });
  for (const e of tail) {
    state = hostDecider.evolve(state, { type: e.type, data: e.data } as HostEvent);
    version = e.version;
  }
  return { state, version };
}

async function saveRow(tx: Queryable, host: Host): Promise<void> {
  const free = freeResources(host);
  await tx.query(
    `INSERT INTO host_inventory (host_id, name, address, port, state, hypervisor, free_vcpus, free_memory_mb, free_disk_gb, version, host,
       capacity_vcpus, capacity_memory_mb, capacity_disk_gb)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14)
     ON CONFLICT (host_id) DO UPDATE SET name = $2, address = $3, port = $4, state = $5, hypervisor = $6,
       free_vcpus = $7, free_memory_mb = $8, free_disk_gb = $9, version = $10, host = $11::jsonb,
       capacity_vcpus = $12, capacity_memory_mb = $13, capacity_disk_gb = $14
     WHERE host_inventory.version < $10`,
    [
      host.id, host.name, host.address, host.port, host.state, host.hypervisor, free.vcpus, free.memoryMb, free.diskGb, host.version,
      JSON.stringify(host), host.capacity.vcpus, host.capacity.memoryMb, host.capacity.diskGb,
    ],
  );
}

/** Mirrors the claims the events made or gave back into host_claims. */
async function saveClaims(tx: Queryable, hostId: string, events: readonly HostEvent[]): Promise<void> {
  for (const e of events) {
    if (e.type === 'HostCapacityClaimed') {
      await tx.query('INSERT INTO host_claims (instance_id, host_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [e.data.instanceId, hostId]);
    } else if (e.type === 'HostCapacityReleased') {
      await tx.query('DELETE FROM host_claims WHERE instance_id = $1 AND host_id = $2', [e.data.instanceId, hostId]);
    }
  }
}

export interface HostWrite {
  /** Names the write: event ids derive from it, so the same key must always mean the same write. */
  key: string;
  metadata: EventMetadata;
  /** Read-decide-append rounds before a version conflict is given up on. */
  rounds?: number;
  /** A state already read; re-read on a version conflict. */
  known?: HostFolded;
}

/**
 * Every write to a host stream goes through here: decide on the host (inventory row plus stream tail),
 * append with its version expected, and update the inventory row and claims in the same transaction.
 * Writers of one host wait for each other on the host's row lock; a write decided on a stale `known`
 * fails on its version, and the next round reads again and decides anew.
 */
export async function appendToHost(
  rt: Pick<Runtime, 'db' | 'store'>,
  hostId: string,
  command: HostCommand | ((state: Host | null) => HostCommand),
  write: HostWrite,
  decider: Decider<Host | null, HostCommand, HostEvent> = hostDecider,
): Promise<HostFolded & { appended: HostEvent[] }> {
  const rounds = write.rounds ?? 5;
  let known = write.known;
  for (let round = 1; ; round++) {
    try {
      const result = await rt.db.transaction(async (tx) => {
        // Writers of one host queue on its inventory row instead of racing on the stream's version: 32
        // boots claiming on one host would otherwise mostly fail and retry. Rows read after the lock are
        // the latest committed, so a version conflict remains only for a stale `known` or a new host.
        await tx.query('SELECT 1 FROM host_inventory WHERE host_id = $1 FOR UPDATE', [hostId]);
        const current = known ?? (await readHost(rt, hostId, tx));
        const events = decider.decide(typeof command === 'function' ? command(current.state) : command, current.state);
        if (events.length === 0) return { ...current, appended: [] as HostEvent[] };
        const stored = await rt.store.append(
          hostStream(hostId),
          events.map((e, i) => ({ id: eventIdFor(write.key, i), type: e.type, data: e.data, metadata: write.metadata }) as never),
          { expectedVersion: current.version === 0 ? 'noStream' : current.version, tx },
        );
        // A retried write that was already stored: the stream may have moved on since, so read what it is now.
        const after = stored.duplicate
          ? await readHost(rt, hostId, tx)
          : { state: events.reduce(decider.evolve, current.state), version: stored.streamVersion };
        if (after.state) await saveRow(tx, after.state);
        if (!stored.duplicate) await saveClaims(tx, hostId, events);
        return { ...after, appended: stored.duplicate ? [] : events };
      });
      if (result.appended.length > 0) rt.store.wakeSubscribers();
      return result;
    } catch (e) {
      if (!(e instanceof WrongExpectedVersion) || round >= rounds) throw e;
      known = undefined;
    }
  }
}

export interface CandidateQuery {
  resources: Resources;
  excludeHostIds?: readonly string[];
  hypervisor?: string;
  limit: number;
}

/**
 * Nova's filter scheduler over the inventory: UP hosts with room for `resources`, most free memory
 * first, ties by id. An index scan that stops at `limit` rows, so its cost does not grow with the
 * number of hosts that are full or down... only with how many must be skipped to find `limit` that fit.
 */
export async function candidateHostIds(rt: Pick<Runtime, 'db'>, query: CandidateQuery): Promise<string[]> {
  const { vcpus, memoryMb, diskGb } = query.resources;
  const rows = await rt.db.query<{ id: string }>(
    `SELECT host_id::text AS id FROM host_inventory
      WHERE state = 'UP' AND free_memory_mb >= $2 AND free_vcpus >= $1 AND free_disk_gb >= $3
        AND NOT (host_id = ANY($4::uuid[])) AND ($5::text IS NULL OR hypervisor = $5)
      ORDER BY free_memory_mb DESC, host_id
      LIMIT $6`,
    [vcpus, memoryMb, diskGb, query.excludeHostIds ?? [], query.hypervisor ?? null, query.limit],
  );
  return rows.map((r) => r.id);
}

/** The hosts holding a claim for `instanceId` (normally one, or none). */
export async function hostsHolding(rt: Pick<Runtime, 'db'>, instanceId: string): Promise<string[]> {
  const rows = await rt.db.query<{ id: string }>('SELECT host_id::text AS id FROM host_claims WHERE instance_id = $1', [instanceId]);
  return rows.map((r) => r.id);
}

/** Why no host could ever take `resources`, whatever is allocated; undefined when some UP host is big enough. */
export async function hostCapacityShortfall(rt: Pick<Runtime, 'db'>, resources: Resources): Promise<'no-hosts' | 'flavor-larger-than-any-host' | undefined> {
  const [row] = await rt.db.query<{ any_host: boolean; fits: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM host_inventory) AS any_host,
            EXISTS (SELECT 1 FROM host_inventory WHERE state = 'UP' AND capacity_vcpus >= $1 AND capacity_memory_mb >= $2
                    AND capacity_disk_gb >= $3) AS fits`,
    [resources.vcpus, resources.memoryMb, resources.diskGb],
  );
  if (row?.fits) return undefined;
  return row?.any_host ? 'flavor-larger-than-any-host' : 'no-hosts';
}

/** A host already registered under this name or at this agent endpoint. */
export async function hostClashing(rt: Pick<Runtime, 'db'>, name: string, address: string, port: number): Promise<Host | undefined> {
  const [row] = await rt.db.query<{ host: Host }>(
    'SELECT host FROM host_inventory WHERE name = $1 OR (address = $2 AND port = $3) LIMIT 1',
    [name, address, port],
  );
  return row?.host;
}

/** Every host, from the inventory (the API's few admin reads; placement never lists them all). */
export async function listInventoryHosts(rt: Pick<Runtime, 'db'>): Promise<Host[]> {
  return (await rt.db.query<{ host: Host }>('SELECT host FROM host_inventory ORDER BY name')).map((r) => r.host);
}

/**
 * Brings every inventory row up to its stream, and makes rows for host streams that have none (a data
 * dir from before the inventory existed). Run at start-up; cheap when nothing lags: one grouped index
 * scan over the host streams' last versions.
 */
export async function refreshHostInventory(rt: Pick<Runtime, 'db' | 'store'>): Promise<number> {
  const lagging = await rt.db.query<{ stream_id: string }>(
    `SELECT s.stream_id FROM (
        SELECT stream_id, max(version) AS version FROM events WHERE starts_with(stream_id, 'host-') GROUP BY stream_id
      ) s LEFT JOIN host_inventory i ON i.host_id::text = substr(s.stream_id, 6)
      WHERE i.version IS NULL OR i.version < s.version`,
  );
  for (const { stream_id } of lagging) {
    const hostId = stream_id.slice('host-'.length);
    await rt.db.transaction(async (tx) => {
      const { state } = await readHost(rt, hostId, tx);
      if (!state) return;
      await saveRow(tx, state);
      await tx.query('DELETE FROM host_claims WHERE host_id = $1', [hostId]);
      for (const instanceId of Object.keys(state.claims)) {
        await tx.query('INSERT INTO host_claims (instance_id, host_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [instanceId, hostId]);
      }
    });
  }
  return lagging.length;
}
