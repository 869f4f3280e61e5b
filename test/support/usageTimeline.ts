import { randomUUID } from 'node:crypto';
import { eventRegistry, imageStream, instanceStream, networkStream, projectStream, volumeStream } from '../../domain/events.js';
import { PRICE_SHEET_STREAM } from '../../domain/priceSheet.js';
import { meteringClockStream, hourFloor, type UsageType } from '../../domain/usage.js';
import type { TypedNewEvent } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';

type NewEvent = TypedNewEvent<typeof eventRegistry>;
const metadata = { actor: 'test' };
const event = (type: NewEvent['type'], data: unknown): NewEvent => ({ id: randomUUID(), type, data, metadata }) as NewEvent;

export const FLAVOR = { id: randomUUID(), vcpus: 1, memoryMb: 512, diskGb: 1 };

/**
 * A scripted lifecycle whose events carry the times the test chooses, appended as the workflows would
 * append them (task started, transition, task finished), so the consumer sees the log a real one does.
 */
export function usageTimeline(rt: Runtime) {
  const append = (stream: string, events: NewEvent[]) => rt.store.append(stream, events, { expectedVersion: 'any' });
  const action = async (instanceId: string, kind: 'STOP' | 'START' | 'DELETE', type: NewEvent['type'], at: string) => {
    const operationId = randomUUID();
    await append(instanceStream(instanceId), [
      event('InstanceTaskStarted', { operationId, kind, at }),
      event(type, { operationId, at }),
      event('InstanceTaskFinished', { operationId, outcome: 'SUCCEEDED', at }),
    ]);
  };
  return {
    async project() {
      const id = randomUUID();
      await append(projectStream(id), [event('ProjectCreated', { id, name: `p-${id.slice(0, 8)}`, createdAt: new Date().toISOString() })]);
      return id;
    },
    /** Boot requested and launched at `at` (the boot's own minutes are not what this tests). */
    async boot(projectId: string, at: string, flavor = FLAVOR) {
      const instanceId = randomUUID();
      const operationId = randomUUID();
      const hostId = randomUUID();
      await append(instanceStream(instanceId), [
        event('InstanceBootRequested', { instanceId, projectId, name: `vm-${instanceId.slice(0, 8)}`, flavor, imageId: randomUUID(), networkId: null, operationId, requestedAt: at }),
        event('InstanceScheduled', { operationId, hostId, at }),
        event('InstanceLaunched', { operationId, hostId, launchedAt: at }),
        event('InstanceTaskFinished', { operationId, outcome: 'SUCCEEDED', at }),
      ]);
      return instanceId;
    },
    stop: (id: string, at: string) => action(id, 'STOP', 'InstanceStopped', at),
    start: (id: string, at: string) => action(id, 'START', 'InstanceStarted', at),
    delete: (id: string, at: string) => action(id, 'DELETE', 'InstanceDeleted', at),
    /** A volume created (requested and made) at `at`, as createVolume appends it. */
    async volume(projectId: string, sizeGb: number, at: string) {
      const volumeId = randomUUID();
      const operationId = randomUUID();
      await append(volumeStream(volumeId), [
        event('VolumeCreateRequested', { volumeId, projectId, name: `vol-${volumeId.slice(0, 8)}`, sizeGb, sourceSnapshotId: null, operationId, requestedAt: at }),
        event('VolumeCreated', { operationId, at }),
        event('VolumeTaskFinished', { operationId, outcome: 'SUCCEEDED', at }),
      ]);
      return volumeId;
    },
    /** A volume whose create failed at `at`: ERROR, holding no bytes. */
    async failedVolume(projectId: string, sizeGb: number, at: string) {
      const volumeId = randomUUID();
      const operationId = randomUUID();
      await append(volumeStream(volumeId), [
        event('VolumeCreateRequested', { volumeId, projectId, name: `vol-${volumeId.slice(0, 8)}`, sizeGb, sourceSnapshotId: null, operationId, requestedAt: at }),
        event('VolumeFailed', { operationId, code: 'INTERNAL', message: 'no space', at }),
        event('VolumeTaskFinished', { operationId, outcome: 'FAILED', at }),
      ]);
      return volumeId;
    },
    async snapshotVolume(volumeId: string, at: string) {
      const snapshotId = randomUUID();
      const operationId = randomUUID();
      await append(volumeStream(volumeId), [
        event('VolumeTaskStarted', { operationId, kind: 'SNAPSHOT_VOLUME', snapshot: { id: snapshotId, name: `snap-${snapshotId.slice(0, 8)}` }, at }),
        event('VolumeSnapshotted', { operationId, snapshotId, at }),
        event('VolumeTaskFinished', { operationId, outcome: 'SUCCEEDED', at }),
      ]);
      return snapshotId;
    },
    async deleteVolume(volumeId: string, at: string) {
      const operationId = randomUUID();
      await append(volumeStream(volumeId), [
        event('VolumeTaskStarted', { operationId, kind: 'DELETE_VOLUME', at }),
        event('VolumeDeleted', { operationId, at }),
        event('VolumeTaskFinished', { operationId, outcome: 'SUCCEEDED', at }),
      ]);
    },
    /** An image created at `createdAt` whose upload of `sizeBytes` ends at `uploadedAt`. */
    async image(projectId: string, sizeBytes: number, createdAt: string, uploadedAt: string) {
      const id = randomUUID();
      const uploadId = randomUUID();
      await append(imageStream(id), [
        event('ImageCreated', { id, name: `img-${id.slice(0, 8)}`, format: 'qcow2', visibility: 'PRIVATE', projectId, sourceInstanceId: null, createdAt }),
        event('ImageUploadStarted', { uploadId, at: createdAt }),
        event('ImageUploaded', { uploadId, checksum: 'a'.repeat(64), sizeBytes, at: uploadedAt }),
      ]);
      return id;
    },
    deleteImage: (id: string, at: string) => append(imageStream(id), [event('ImageDeleted', { at })]),
    /** An external network (no project) that hands out floating addresses from 203.0.113.0/24. */
    async externalNetwork(at: string) {
      const networkId = randomUUID();
      await append(networkStream(networkId), [
        event('NetworkCreated', { networkId, projectId: null, name: `ext-${networkId.slice(0, 8)}`, cidr: '203.0.113.0/24', gateway: '203.0.113.1', external: true, at }),
      ]);
      let next = 10;
      return {
        networkId,
        async allocate(projectId: string, allocatedAt: string) {
          const addressId = randomUUID();
          const address = `203.0.113.${next++}`;
          await append(networkStream(networkId), [
            event('AddressAllocated', { addressId, address, kind: 'FLOATING', projectId, instanceId: null, operationId: randomUUID(), at: allocatedAt }),
          ]);
          return { addressId, address };
        },
        associate: (addressId: string, instanceId: string, at: string) =>
          append(networkStream(networkId), [event('AddressAssociated', { addressId, instanceId, fixedAddress: '10.0.0.5', operationId: randomUUID(), at })]),
        release: (a: { addressId: string; address: string }, at: string) =>
          append(networkStream(networkId), [event('AddressReleased', { ...a, operationId: randomUUID(), at })]),
      };
    },
    /** A project's own network, whose addresses are its instances' FIXED ones. */
    async tenantNetwork(projectId: string, at: string) {
      const networkId = randomUUID();
      await append(networkStream(networkId), [
        event('NetworkCreated', { networkId, projectId, name: `net-${networkId.slice(0, 8)}`, cidr: '10.0.0.0/24', gateway: '10.0.0.1', external: false, at }),
      ]);
      let next = 10;
      return {
        networkId,
        allocateFixed: (instanceId: string, allocatedAt: string) =>
          append(networkStream(networkId), [
            event('AddressAllocated', { addressId: randomUUID(), address: `10.0.0.${next++}`, kind: 'FIXED', projectId, instanceId, operationId: randomUUID(), at: allocatedAt }),
          ]),
      };
    },
    tick: (at: string) =>
      append(meteringClockStream(new Date(hourFloor(Date.parse(at))).toISOString()), [event('UsageClockTicked', { at })]),
    price: (usageType: UsageType, unitPrice: number, effectiveFrom: string, flavorId: string | null = null) =>
      append(PRICE_SHEET_STREAM, [event('PriceSet', { usageType, flavorId, unitPrice, currency: 'EUR', effectiveFrom })]),
  };
}

/** Every usage record, in a stable order, as plain values: what a rebuild must reproduce exactly. */
export async function dumpUsage(rt: Runtime) {
  return {
    records: await rt.db.query(
      `SELECT resource_id, usage_type, start_at, end_at, project_id, flavor_id, size, quantity, unit FROM usage_records
        ORDER BY resource_id, usage_type, start_at`,
    ),
    open: await rt.db.query('SELECT * FROM usage_open ORDER BY resource_id, usage_type'),
    subjects: await rt.db.query('SELECT * FROM usage_subjects ORDER BY id'),
  };
}
