import { randomUUID } from 'node:crypto';
import { flavorDecider } from '../../domain/catalog.js';
import { canSeeImage, imageFold, isBootable } from '../../domain/image.js';
import { StratusError } from '../../domain/errors.js';
import { flavorStream, imageStream, instanceStream, operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { decideInstance, instanceDecider, type Instance } from '../../domain/instance.js';
import type { BootInstanceInput } from '../../domain/inputs.js';
import { decideOperation, operationDecider, operationIdFor, type Operation } from '../../domain/operation.js';
import type { Resources } from '../../domain/resources.js';
import { readFolded } from '../../activities/events.js';
import { hostCapacityShortfall } from '../../activities/hostInventory.js';
import { hasStoredBytes } from '../../activities/imageFetch.js';
import { WrongExpectedVersion } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';
import { requireWriter } from './access.js';
import { prepareBootNetworking } from './networks.js';
import { appendNew, commandMetadata, now, repeatedRequest, startOrCompensate, type LifecycleResult } from './operations.js';
import { traceOfRequest } from '../../server/telemetry.js';

/**
 * Boots an instance in the caller's project: records the request (operation PENDING, instance BUILDING
 * holding the BOOT task) in one transaction and starts the boot workflow; placement happens there. Refused
 * before anything is written: an unknown flavor or image (NOT_FOUND), an image that is not active
 * (CONFLICT), a flavor no UP host could hold even when empty (NO_VALID_HOST). A host that is merely full
 * now is the workflow's NO_VALID_HOST (the instance ends in ERROR), as in Nova.
 */
export async function bootInstance(rt: Runtime, caller: Caller, input: BootInstanceInput): Promise<LifecycleResult> {
  requireWriter(caller);
  const projectId = caller.projectId;
  const operationId = operationIdFor({ projectId, clientRequestId: input.clientRequestId ?? null, randomId: randomUUID() });
  if (input.clientRequestId) {
    const repeat = await repeatedRequest(rt, operationId, { kind: 'BOOT', projectId });
    if (repeat) return repeat;
  }

  const [{ state: flavor }, { state: image }] = await Promise.all([
    readFolded(rt, flavorStream(input.flavorId), flavorDecider),
    readFolded(rt, imageStream(input.imageId), imageFold),
  ]);
  if (!flavor) throw new StratusError('NOT_FOUND', `flavor ${input.flavorId} not found`, { id: input.flavorId });
  // Another project's PRIVATE image does not exist for the caller.
  if (!image || !canSeeImage(caller, image)) throw new StratusError('NOT_FOUND', `image ${input.imageId} not found`, { id: input.imageId });
  if (!isBootable(image)) throw new StratusError('CONFLICT', `image ${image.name} is ${image.status}, not active`, { id: image.id });
  await requireSomeHostCouldHold(rt, flavor);
  const networkId = await prepareBootNetworking(rt, caller, input.networkId);

  const instanceId = randomUUID();
  const at = now();
  const operationEvents = decideOperation(
    { type: 'request', data: { operationId, kind: 'BOOT', resourceId: instanceId, projectId, actor: caller, at, ...(input.clientRequestId ? { clientRequestId: input.clientRequestId } : {}), ...traceOfRequest() } },
    null,
  );
  const instanceEvents = decideInstance(
    {
      type: 'requestBoot',
      data: {
        instanceId,
        projectId,
        name: input.name,
        flavor: { id: flavor.id, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb },
        imageId: image.id,
        networkId,
        operationId,
        at,
      },
    },
    null,
  );
  const metadata = commandMetadata(caller, operationId);
  try {
    // Both or neither: an operation without its instance (or the reverse) would dangle forever.
    await rt.db.transaction(async (tx) => {
      await appendNew(rt, operationStream(operationId), operationEvents, 'noStream', metadata, tx);
      await appendNew(rt, instanceStream(instanceId), instanceEvents, 'noStream', metadata, tx);
    });
  } catch (e) {
    // A racing twin with the same clientRequestId got there first: answer with its operation.
    if (e instanceof WrongExpectedVersion && e.streamId === operationStream(operationId)) {
      const repeat = await repeatedRequest(rt, operationId, { kind: 'BOOT', projectId });
      if (repeat) return repeat;
    }
    throw e;
  }
  // A registered image has no bytes for a host to fetch: the boot skips that step (and its round trip).
  const fetchImage = hasStoredBytes(image);
  await startOrCompensate(rt, 'BOOT', { operationId, instanceId, actor: caller.tokenId, attempt: 1, fetchImage });
  return {
    operation: operationEvents.reduce(operationDecider.evolve, null as Operation | null)!,
    instance: instanceEvents.reduce(instanceDecider.evolve, null as Instance | null)!,
  };
}

/** Nova's "no valid host" up front for a flavor larger than every UP host's whole capacity. */
async function requireSomeHostCouldHold(rt: Runtime, flavor: Resources): Promise<void> {
  const reason = await hostCapacityShortfall(rt, flavor);
  if (reason) {
    throw new StratusError('NO_VALID_HOST', `no UP host can hold ${flavor.vcpus} vCPU, ${flavor.memoryMb} MB, ${flavor.diskGb} GB`, { reason });
  }
}
