import { StratusError } from '../domain/errors.js';
import type { Instance } from '../domain/instance.js';
import type { SpecVolume } from '../hostagent/driver.js';
import type { Runtime } from '../server/runtime.js';
import { readVolume, volumesEverAttachedTo } from './volumeRecords.js';

/**
 * Volumes travel with their instance. They live in the shared storage pool (the same path on every
 * host), so nothing is copied: the VM made on the target (a live migration's waiting twin, a cold
 * migration's or a resize's definition, an evacuation's rebuild) is made with the same volumes on the
 * same devices, and the source lets go of them when its VM goes. The attachments themselves (the
 * volume streams' `attachedTo` and `device`) do not change: the volume stays IN_USE by the instance.
 */

/** The volumes attached to the instance now, read from their streams (never from a projection). */
export async function attachedVolumesOf(rt: Pick<Runtime, 'db' | 'store'>, instanceId: string): Promise<SpecVolume[]> {
  const out: SpecVolume[] = [];
  for (const volumeId of (await volumesEverAttachedTo(rt, instanceId)).sort()) {
    const volume = await readVolume(rt, volumeId);
    if (volume.attachedTo !== instanceId) continue;
    out.push({ volumeId: volume.id, sizeGb: volume.sizeGb, ...(volume.device ? { device: volume.device } : {}) });
  }
  return out;
}

/**
 * The volume part of plugging an instance's attachments on the target before the VM arrives. On a shared
 * pool there is nothing to connect ahead (the target's agent opens each file when it makes the VM, and a
 * file it cannot see is NOT_FOUND there, before anything has moved), so this only makes sure no volume
 * the instance carries is in the middle of an action of its own. Today that cannot happen (attach and
 * detach hold the instance's task, which the move holds; a snapshot needs a detached volume): the check
 * keeps a future volume action that leaves the instance's task free from racing a move.
 */
export async function plugVolumesOnTarget(rt: Pick<Runtime, 'db' | 'store'>, instance: Instance, targetHostId: string): Promise<void> {
  for (const volumeId of await volumesEverAttachedTo(rt, instance.id)) {
    const volume = await readVolume(rt, volumeId);
    if (volume.attachedTo !== instance.id || volume.task === null) continue;
    throw new StratusError('CONFLICT', `volume ${volume.id} of instance ${instance.id} is busy (${volume.task}): it cannot move to host ${targetHostId} now`, {
      volumeId: volume.id,
      task: volume.task,
    });
  }
}
