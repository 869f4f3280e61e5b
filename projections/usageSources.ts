import { evolveInstance, type Instance, type InstanceEvent } from '../domain/instance.js';
import type { Meter } from '../domain/usage.js';
import type { StratusEvent } from './projection.js';

/**
 * How one kind of resource is metered: its stream, the domain's own evolve to follow its state, and
 * the meters that state runs. The consumer does the rest (opening, closing, hour splits), so metering a
 * new kind is one entry here, e.g. for volumes:
 *
 *   { resourceType: 'volume', streamPrefix: 'volume-', evolve: evolveVolume, projectOf: (v) => v.projectId,
 *     meters: (v) => (v.state === 'DELETED' ? [] : [{ usageType: 'VOLUME', size: v.sizeGb, flavorId: null }]) }
 */
export interface UsageSource<S> {
  resourceType: string;
  streamPrefix: string;
  evolve(state: S | null, event: StratusEvent): S | null;
  projectOf(state: S): string;
  meters(state: S): Meter[];
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

export const usageSources: readonly UsageSource<unknown>[] = [instanceUsage as UsageSource<unknown>];

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
