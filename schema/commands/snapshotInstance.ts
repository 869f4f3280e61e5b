import { randomUUID } from 'node:crypto';
import { imageStream, instanceStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { decideImage, evolveImage, imageFold, type StoredImage } from '../../domain/image.js';
import type { SnapshotInstanceInput } from '../../domain/inputs.js';
import { readFolded } from '../../activities/events.js';
import type { Runtime } from '../../server/runtime.js';
import { actOnInstance } from './instanceActions.js';
import { now, type LifecycleResult } from './operations.js';

/**
 * Nova's createImage of a server: the image is made at once (QUEUED, PRIVATE to the instance's project,
 * `sourceInstance` the instance) in the same transaction as the operation and the instance's SNAPSHOT
 * task, so the payload names it; the workflow (workflows/snapshotInstance.ts) fills it with the host's
 * snapshot of the disk, or leaves it ERROR with the reason. Refusals (NOT_FOUND, CONFLICT when busy or in
 * a state that cannot be snapshotted) are the instance action's, decided before anything is written.
 */
export async function snapshotInstance(rt: Runtime, caller: Caller, input: SnapshotInstanceInput): Promise<LifecycleResult & { image?: StoredImage }> {
  const imageId = randomUUID();
  let made: StoredImage | null = null;
  const result = await actOnInstance(rt, caller, input, { kind: 'SNAPSHOT', imageId }, (instance) => {
    const events = decideImage(
      {
        type: 'create',
        data: {
          id: imageId,
          name: input.imageName,
          format: 'qcow2',
          visibility: 'PRIVATE',
          projectId: instance.projectId,
          sourceInstanceId: instance.id,
          createdAt: now(),
        },
      },
      null,
    );
    made = events.reduce(evolveImage, null as StoredImage | null);
    return [{ streamId: imageStream(imageId), events }];
  });
  if (made && result.instance?.taskOperationId === result.operation.id) return { ...result, image: made };
  // A repeated clientRequestId: the first request's image, named by its task.
  const began = (await rt.store.readStream(instanceStream(result.operation.resourceId))).findLast(
    (e) => e.type === 'InstanceTaskStarted' && e.data.operationId === result.operation.id,
  );
  const firstImageId = began?.type === 'InstanceTaskStarted' ? began.data.imageId : undefined;
  const image = firstImageId ? (await readFolded(rt, imageStream(firstImageId), imageFold)).state : null;
  return { ...result, ...(image ? { image } : {}) };
}
