import { flavorDecider, imageDecider } from '../../domain/catalog.js';
import { StratusError } from '../../domain/errors.js';
import { flavorStream, imageStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import type { ResizeInstanceInput } from '../../domain/inputs.js';
import { readFolded } from '../../activities/events.js';
import type { Runtime } from '../../server/runtime.js';
import { requireMutableIn, requireWriter } from './access.js';
import { actOnInstance } from './instanceActions.js';
import { readInstanceState, type LifecycleResult } from './operations.js';

const GiB = 2 ** 30;

/**
 * Gives an instance another flavor (RUNNING or STOPPED; it comes back in the same state). Refused before
 * anything is written: an unknown flavor (NOT_FOUND), the flavor it already has, or a disk smaller than
 * its image or than the disk it has now (BAD_USER_INPUT: a disk never shrinks, as in Nova). Where it
 * fits is the workflow's to decide (NO_VALID_HOST when nowhere).
 */
export async function resizeInstance(rt: Runtime, caller: Caller, input: ResizeInstanceInput): Promise<LifecycleResult> {
  requireWriter(caller);
  const notFound = () => new StratusError('NOT_FOUND', `instance ${input.id} not found`, { id: input.id });
  const { state: instance } = await readInstanceState(rt, input.id);
  // Tenancy first: another project's instance must not be told anything about the flavor asked for.
  if (!instance || instance.state === 'DELETED') throw notFound();
  requireMutableIn(caller, instance.projectId, notFound);
  const [{ state: flavor }, { state: image }] = await Promise.all([
    readFolded(rt, flavorStream(input.flavorId), flavorDecider),
    readFolded(rt, imageStream(instance.imageId), imageDecider),
  ]);
  if (!flavor) throw new StratusError('NOT_FOUND', `flavor ${input.flavorId} not found`, { id: input.flavorId });
  const refuse = (message: string) => new StratusError('BAD_USER_INPUT', message, { flavorId: flavor.id, path: ['flavorId'] });
  if (flavor.id === instance.flavor.id) throw refuse(`instance ${instance.id} already has flavor ${flavor.name}`);
  const imageGb = image ? Math.ceil(image.sizeBytes / GiB) : 0;
  if (flavor.diskGb < imageGb) throw refuse(`flavor ${flavor.name} has a ${flavor.diskGb} GB disk, smaller than its image's ${imageGb} GB`);
  if (flavor.diskGb < instance.flavor.diskGb) {
    throw refuse(`flavor ${flavor.name} has a ${flavor.diskGb} GB disk; the instance's is ${instance.flavor.diskGb} GB and a disk never shrinks`);
  }
  const snapshot = { id: flavor.id, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb };
  return actOnInstance(rt, caller, input, { kind: 'RESIZE', flavor: snapshot });
}
