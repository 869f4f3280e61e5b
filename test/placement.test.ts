import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFolded } from '../activities/events.js';
import { appendToHost, candidateHostIds, hostInventoryMigrations, readHost, refreshHostInventory } from '../activities/hostInventory.js';
import { claimHostCapacity, readHosts, releaseHostClaims } from '../activities/placement.js';
import { StratusError } from '../domain/errors.js';
import { eventRegistry, hostStream } from '../domain/events.js';
import { hostDecider, type Host } from '../domain/host.js';
import { migrate, openDatabase, openEventStore, type Database, type DatabaseTarget, type EventStore } from '../eventstore/index.js';
import { createDatabase } from './support/postgres.js';

const metadata = { actor: 'test', operationId: randomUUID() };
const fingerprint = `SHA256:${'A'.repeat(43)}`;

const backends: [string, () => Promise<DatabaseTarget>][] = [
  ['PostgreSQL', async () => ({ url: await createDatabase(inject('postgresUrl'), 'placement'), maxConnections: 40 })],
  ['PGlite', async () => ({})],
];

describe.each(backends)('placement on the host inventory (%s)', (_backend, target) => {
  let db: Database;
  let store: EventStore<typeof eventRegistry>;
  let rt: { db: Database; store: EventStore<typeof eventRegistry> };

  beforeAll(async () => {
    db = await openDatabase(await target());
    store = await openEventStore(db, eventRegistry);
    await migrate(db, hostInventoryMigrations);
    rt = { db, store };
  });
  afterAll(async () => {
    await db?.close();
  });

  const registerHosts = async (n: number, vcpus: number) => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const hostId = randomUUID();
      await appendToHost(
        rt,
        hostId,
        {
          type: 'register',
          data: {
            hostId,
            name: `h-${hostId.slice(0, 8)}`,
            address: '127.0.0.1',
            port: 10_000 + i,
            hostKeyFingerprint: fingerprint,
            capacity: { vcpus, memoryMb: vcpus * 1024, diskGb: vcpus * 10 },
            hypervisor: 'sim',
            at: new Date().toISOString(),
          },
        },
        { key: `register:${hostId}`, metadata },
      );
      ids.push(hostId);
    }
    return ids;
  };
  const fold = async (hostId: string) => (await readFolded(rt, hostStream(hostId), hostDecider)).state!;
  const claim = (instanceId: string) =>
    claimHostCapacity(rt, {
      instanceId,
      operationId: randomUUID(),
      resources: { vcpus: 1, memoryMb: 1024, diskGb: 10 },
      key: `claim:${instanceId}`,
      metadata,
    });

  it('120 concurrent claims on 10 hosts of 8 vCPUs never overcommit: 80 win, 40 get NO_VALID_HOST, and the inventory equals the streams', async () => {
    const hostIds = await registerHosts(10, 8);
    const outcomes = await Promise.allSettled(Array.from({ length: 120 }, () => claim(randomUUID())));
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    expect(won).toHaveLength(80);
    expect(refused).toHaveLength(40);
    for (const r of refused) expect((r as StratusError).code).toBe('NO_VALID_HOST');
    for (const hostId of hostIds) {
      const streamHost = await fold(hostId);
      expect(streamHost.allocated.vcpus).toBe(8);
      expect(Object.keys(streamHost.claims)).toHaveLength(8);
      expect((await readHost(rt, hostId)).state).toEqual(streamHost);
    }
    expect(await candidateHostIds(rt, { resources: { vcpus: 1, memoryMb: 1, diskGb: 1 }, limit: 5, excludeHostIds: [] }).then((c) => c.filter((id) => hostIds.includes(id)))).toEqual([]);
  });

  it('a repeated claim for one instance keeps its one host, and releasing frees exactly that host', async () => {
    const [a, b] = await registerHosts(2, 4);
    const instanceId = randomUUID();
    const first = await claim(instanceId);
    expect([a, b]).toContain(first);
    expect(await claim(instanceId)).toBe(first);
    expect(await releaseHostClaims(rt, { instanceId, key: `release:${instanceId}`, metadata })).toEqual([first]);
    expect((await fold(first)).allocated.vcpus).toBe(0);
    expect(await releaseHostClaims(rt, { instanceId, key: `release2:${instanceId}`, metadata })).toEqual([]);
  });

  it('a host event appended behind the inventory is still decided on: reads fold the stream tail, and refresh catches the row up', async () => {
    const [hostId] = await registerHosts(1, 2);
    const row = await readHost(rt, hostId!);
    // Straight to the log, as a writer from before the inventory existed would have.
    await store.append(
      hostStream(hostId!),
      [{ id: randomUUID(), type: 'HostCapacityClaimed', data: { instanceId: randomUUID(), operationId: randomUUID(), resources: { vcpus: 2, memoryMb: 2048, diskGb: 20 } }, metadata }],
      { expectedVersion: row.version },
    );
    expect((await readHost(rt, hostId!)).state).toEqual(await fold(hostId!));
    // The host is full by its stream, so a claim that picks it is refused rather than overcommitting.
    await expect(
      appendToHost(rt, hostId!, { type: 'claim', data: { instanceId: randomUUID(), operationId: randomUUID(), resources: { vcpus: 1, memoryMb: 1, diskGb: 1 } } }, { key: randomUUID(), metadata }),
    ).rejects.toMatchObject({ code: 'NO_VALID_HOST' });
    expect(await refreshHostInventory(rt)).toBeGreaterThanOrEqual(1);
    const [after] = await db.query<{ version: number; free_vcpus: number }>('SELECT version, free_vcpus FROM host_inventory WHERE host_id = $1', [hostId]);
    expect(after).toEqual({ version: (await fold(hostId!)).version, free_vcpus: 0 });
  });

  it('the inventory is a cache of the log: dropped and refreshed, it comes back identical', async () => {
    await registerHosts(3, 4);
    for (let i = 0; i < 5; i++) await claim(randomUUID());
    const snapshot = async () => ({
      rows: await db.query('SELECT * FROM host_inventory ORDER BY host_id'),
      claims: await db.query('SELECT instance_id::text, host_id::text FROM host_claims ORDER BY instance_id, host_id'),
    });
    const before = await snapshot();
    await db.exec('DELETE FROM host_inventory; DELETE FROM host_claims');
    await refreshHostInventory(rt);
    expect(await snapshot()).toEqual(before);
    const hosts: Host[] = await readHosts(rt);
    for (const h of hosts) expect(h).toEqual(await fold(h.id));
  });
});
