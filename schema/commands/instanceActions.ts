import { randomUUID } from 'node:crypto';
import { StratusError } from '../../domain/errors.js';
import { instanceStream, operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { decideInstance, instanceDecider, type ActionRequest, type Instance } from '../../domain/instance.js';
import type { InstanceActionInput, RebootInstanceInput } from '../../domain/inputs.js';
import { decideOperation, operationDecider, operationIdFor, type Operation } from '../../domain/operation.js';
import { WrongExpectedVersion } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';
import { requireMutableIn, requireWriter } from './access.js';
import { appendNew, commandMetadata, now, readInstanceState, repeatedRequest, startOrCompensate, type LifecycleResult } from './operations.js';
import { traceOfRequest } from '../../server/telemetry.js';

const notFound = (id: string) => () => new StratusError('NOT_FOUND', `instance ${id} not found`, { id });

/**
 * The recipe every action on an existing instance follows: a repeated clientRequestId answers with the
 * first operation; otherwise the instance stream decides (NOT_FOUND, FORBIDDEN, CONFLICT when busy or
 * when its state does not allow the action) before anything is written, then the operation and the
 * instance's task are recorded in one transaction with the instance's version expected, and the
 * workflow starts. A concurrent change to the instance means deciding again on what it is now.
 */
export async function actOnInstance(
  rt: Runtime,
  caller: Caller,
  input: InstanceActionInput,
  request: ActionRequest,
  /** Streams the command creates along with the task, in the same transaction (a snapshot's image). */
  alsoCreate: (instance: Instance) => { streamId: string; events: { type: string; data: unknown }[] }[] = () => [],
): Promise<LifecycleResult> {
  requireWriter(caller);
  const operationId = operationIdFor({ projectId: caller.projectId, clientRequestId: input.clientRequestId ?? null, randomId: randomUUID() });
  const repeatKey = { kind: request.kind, resourceId: input.id };
  if (input.clientRequestId) {
    const repeat = await repeatedRequest(rt, operationId, repeatKey);
    if (repeat) return repeat;
  }
  for (let round = 1; ; round++) {
    const { state: instance, version } = await readInstanceState(rt, input.id);
    if (!instance || instance.state === 'DELETED') throw notFound(input.id)();
    requireMutableIn(caller, instance.projectId, notFound(input.id));
    const at = now();
    const instanceEvents = decideInstance(
      { type: 'beginAction', data: { ...request, operationId, at, ...(request.kind === 'REBOOT' ? { hard: request.hard ?? false } : {}) } },
      instance,
    );
    const operationEvents = decideOperation(
      {
        type: 'request',
        data: { operationId, kind: request.kind, resourceId: instance.id, projectId: instance.projectId, actor: caller, at, ...(input.clientRequestId ? { clientRequestId: input.clientRequestId } : {}), ...traceOfRequest() },
      },
      null,
    );
    const metadata = commandMetadata(caller, operationId);
    try {
      await rt.db.transaction(async (tx) => {
        await appendNew(rt, operationStream(operationId), operationEvents, 'noStream', metadata, tx);
        await appendNew(rt, instanceStream(instance.id), instanceEvents, version, metadata, tx);
        for (const made of alsoCreate(instance)) await appendNew(rt, made.streamId, made.events, 'noStream', metadata, tx);
      });
    } catch (e) {
      if (!(e instanceof WrongExpectedVersion)) throw e;
      if (e.streamId === operationStream(operationId)) {
        const repeat = await repeatedRequest(rt, operationId, repeatKey);
        if (repeat) return repeat;
      }
      if (round >= 5) throw e;
      continue;
    }
    await startOrCompensate(rt, request.kind, {
      operationId,
      instanceId: instance.id,
      actor: caller.tokenId,
      attempt: 1,
      ...(request.kind === 'REBOOT' ? { hard: request.hard ?? false } : {}),
      ...(request.targetHostId ? { targetHostId: request.targetHostId } : {}),
      ...(request.flavor ? { flavorId: request.flavor.id } : {}),
      ...(request.imageId ? { imageId: request.imageId } : {}),
    });
    return {
      operation: operationEvents.reduce(operationDecider.evolve, null as Operation | null)!,
      instance: instanceEvents.reduce(instanceDecider.evolve, instance as Instance | null)!,
    };
  }
}

export const startInstance = (rt: Runtime, caller: Caller, input: InstanceActionInput) => actOnInstance(rt, caller, input, { kind: 'START' });
export const stopInstance = (rt: Runtime, caller: Caller, input: InstanceActionInput) => actOnInstance(rt, caller, input, { kind: 'STOP' });
export const rebootInstance = (rt: Runtime, caller: Caller, input: RebootInstanceInput) =>
  actOnInstance(rt, caller, input, { kind: 'REBOOT', hard: input.hard ?? false });
export const pauseInstance = (rt: Runtime, caller: Caller, input: InstanceActionInput) => actOnInstance(rt, caller, input, { kind: 'PAUSE' });
export const unpauseInstance = (rt: Runtime, caller: Caller, input: InstanceActionInput) => actOnInstance(rt, caller, input, { kind: 'UNPAUSE' });
export const suspendInstance = (rt: Runtime, caller: Caller, input: InstanceActionInput) => actOnInstance(rt, caller, input, { kind: 'SUSPEND' });
export const resumeInstance = (rt: Runtime, caller: Caller, input: InstanceActionInput) => actOnInstance(rt, caller, input, { kind: 'RESUME' });
export const deleteInstance = (rt: Runtime, caller: Caller, input: InstanceActionInput) => actOnInstance(rt, caller, input, { kind: 'DELETE' });
