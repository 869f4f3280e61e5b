import { evolveHost, hostEvents, type Host, type HostEvent } from '../domain/host.js';
import { loadDoc, upsertRow, type Projection } from './projection.js';

/**
 * rm_hosts: capacity as registered and `allocated` as the sum of the host's live claims, both computed
 * by the domain's `evolveHost`. The write side's scheduler reads this table to pick candidates; the claim
 * itself is decided on the host stream, so a stale row costs a retry, never an overcommit.
 */
export const hostsProjection: Projection = {
  name: 'hosts',
  streamPrefixes: ['host-'],
  tables: ['rm_hosts'],
  migrations: [
    {
      id: 'projections/hosts/001',
      sql: `CREATE TABLE rm_hosts (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        address text NOT NULL,
        port integer NOT NULL,
        host_key_fingerprint text NOT NULL,
        state text NOT NULL,
        hypervisor text NOT NULL,
        capacity_vcpus integer NOT NULL,
        capacity_memory_mb integer NOT NULL,
        capacity_disk_gb integer NOT NULL,
        allocated_vcpus integer NOT NULL,
        allocated_memory_mb integer NOT NULL,
        allocated_disk_gb integer NOT NULL,
        registered_at timestamptz NOT NULL,
        version integer NOT NULL,
        doc jsonb NOT NULL
      )`,
    },
  ],
  async apply(tx, event) {
    if (!Object.hasOwn(hostEvents, event.type) || !event.streamId.startsWith('host-')) return [];
    const id = event.streamId.slice('host-'.length);
    const after = evolveHost(await loadDoc<Host>(tx, 'rm_hosts', id), { type: event.type, data: event.data } as HostEvent);
    if (!after) return [];
    await upsertRow(tx, 'rm_hosts', {
      id,
      name: after.name,
      address: after.address,
      port: after.port,
      host_key_fingerprint: after.hostKeyFingerprint,
      state: after.state,
      hypervisor: after.hypervisor,
      capacity_vcpus: after.capacity.vcpus,
      capacity_memory_mb: after.capacity.memoryMb,
      capacity_disk_gb: after.capacity.diskGb,
      allocated_vcpus: after.allocated.vcpus,
      allocated_memory_mb: after.allocated.memoryMb,
      allocated_disk_gb: after.allocated.diskGb,
      registered_at: after.registeredAt,
      version: after.version,
      doc: JSON.stringify(after),
    });
    return [{ kind: 'host', id, projectId: null }];
  },
};
