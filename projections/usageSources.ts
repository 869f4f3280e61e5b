import { evolveImage, type AnyImageEvent, type StoredImage } from '../domain/image.js';
import { evolveInstance, type Instance, type InstanceEvent } from '../domain/instance.js';
import { evolveNetwork, type Network, type NetworkEvent } from '../domain/network.js';
import type { Meter, SubjectMeter } from '../domain/usage.js';
import { evolveVolume, type Volume, type VolumeEvent, type VolumeState } from '../domain/volume.js';
import type { StratusEvent } from './projection.js';

/**
 * How one kind of resource is metered: its stream, the domain's own evolve to follow its state, and
 * the meters that state runs. The consumer does the rest (opening, closing, hour splits), so metering a
 * new kind is one entry here. A meter may name a part of the resource billed on its own (a volume's
 * snapshot, a network's floating address): its own `resourceId`, `resourceType` and `projectId`.
 */
export interface UsageSource<S> {
  resourceType: string;
  streamPrefix: string;
  evolve(state: S | null, event: StratusEvent): S | null;
  /** Who pays for the resource's own meters; null when nobody does (a public image, an external network). */
  projectOf(state: S): string | null;
  meters(state: S): SubjectMeter[];
}

/**
 * CloudStack's two VM usage types: ALLOCATED_VM from the boot request to the delete (the instance holds
 * its resources, whatever its state), RUNNING_VM while it is RUNNING. Both carry the flavor, so a resize
 * closes the old flavor's hours and opens the new one's. A paused or suspended VM is not running.
 */
const instanceUsage: UsageSource<Instance> = {
  resourceType: 'instance',
  streamPrefix: 'instance-',
  evolve: (state, event) => evolveInstance(state, event as InstanceEvent),
  projectOf: (instance) => instance.projectId,
  meters: (instance) => {
    if (instance.state === 'DELETED') return [];
    const allocated: Meter = { usageType: 'ALLOCATED_VM', size: 1, flavorId: instance.flavor.id };
    return instance.state === 'RUNNING' ? [allocated, { ...allocated, usageType: 'RUNNING_VM' }] : [allocated];
  },
};

/** A volume holds its bytes in the pool from its create to its delete; a failed create (ERROR) holds none. */
const volumeHoldsBytes: Record<VolumeState, boolean> = {
  CREATING: false,
  AVAILABLE: true,
  ATTACHING: true,
  IN_USE: true,
  DETACHING: true,
  DELETING: true,
  ERROR: false,
  DELETED: false,
};

/**
 * VOLUME (GB-hours of its size, from VolumeCreated to VolumeDeleted) and VOLUME_SNAPSHOT (GB-hours of
 * the volume's size when it was taken, from VolumeSnapshotted to the volume's delete, which takes its
 * snapshots with it). Snapshots live on the volume's stream and are records of their own.
 */
const volumeUsage: UsageSource<Volume> = {
  resourceType: 'volume',
  streamPrefix: 'volume-',
  evolve: (state, event) => evolveVolume(state, event as VolumeEvent),
  projectOf: (volume) => volume.projectId,
  meters: (volume) => [
    ...(volumeHoldsBytes[volume.state] ? [{ usageType: 'VOLUME' as const, size: volume.sizeGb, flavorId: null }] : []),
    ...volume.snapshots
      .filter((s) => s.state === 'AVAILABLE')
      .map((s) => ({ usageType: 'VOLUME_SNAPSHOT' as const, size: s.sizeGb, flavorId: null, resourceId: s.id, resourceType: 'volumeSnapshot' })),
  ],
};

const GIB = 1024 ** 3;

/**
 * IMAGE: GB-hours (GiB, as volume sizes are) of an uploaded image's bytes while it is ACTIVE, from the
 * upload's end to its delete, billed to its project. Images an admin registers (the public catalog)
 * have no project and are not billed.
 */
const imageUsage: UsageSource<StoredImage> = {
  resourceType: 'image',
  streamPrefix: 'image-',
  evolve: (state, event) => evolveImage(state, event as AnyImageEvent),
  projectOf: (image) => image.projectId,
  meters: (image) => (image.status === 'ACTIVE' ? [{ usageType: 'IMAGE', size: image.sizeBytes / GIB, flavorId: null }] : []),
};

/**
 * FLOATING_IP: hours a floating address is allocated to a project, associated or not (CloudStack bills
 * the allocation), from AddressAllocated to AddressReleased. Addresses live on their external
 * network's stream; FIXED ones come with an instance and are not billed apart from it. Only external
 * networks are followed (they hand out floating addresses only): a tenant network's state would grow
 * with every instance on it and be written back at each of their allocations, for nothing to bill.
 */
const floatingIpUsage: UsageSource<Network> = {
  resourceType: 'network',
  streamPrefix: 'network-',
  evolve: (state, event) => {
    const next = evolveNetwork(state, event as NetworkEvent);
    return next?.external ? next : null;
  },
  projectOf: () => null,
  meters: (network) =>
    Object.values(network.addresses)
      .filter((a) => a.kind === 'FLOATING')
      .map((a) => ({ usageType: 'FLOATING_IP', size: 1, flavorId: null, resourceId: a.id, resourceType: 'floatingIp', projectId: a.projectId })),
};

export const usageSources: readonly UsageSource<unknown>[] = [instanceUsage, volumeUsage, imageUsage, floatingIpUsage] as UsageSource<unknown>[];

export const usageSourceOf = (streamId: string): UsageSource<unknown> | undefined => usageSources.find((s) => streamId.startsWith(s.streamPrefix));

/**
 * When the event says the change happened: the domain's own timestamp in its data (what the workflow
 * recorded), else when the store recorded it. Never the time it is processed, so a replay agrees.
 */
export function eventTime(event: StratusEvent): string {
  const data = event.data as Record<string, unknown>;
  for (const field of ['at', 'launchedAt', 'requestedAt', 'createdAt', 'registeredAt']) {
    const value = data[field];
    if (typeof value === 'string') return value;
  }
  return event.recordedAt.toISOString();
}
