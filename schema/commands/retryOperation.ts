import { randomUUID } from 'node:crypto';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { StratusError } from '../../domain/errors.js';
import { instanceStream, operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { decideInstance, instanceDecider, InstanceActionKind, type Instance } from '../../domain/instance.js';
import { decideOperation, operationDecider, type Operation } from '../../domain/operation.js';
import { VolumeActionKind, type Volume } from '../../domain/volume.js';
import { retryVolumeOperation } from './volumes.js';
import { decideAndAppend } from '../../activities/events.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin } from './access.js';
import { appendNew, commandMetadata, now, readInstanceState, startOrCompensate, workflowInputOf } from './operations.js';

/**
 * Runs a FAILED operation again (admin): the instance's task is taken again for the same operation, and a
 * new run of the same workflow id (`op-<id>`) starts with the original arguments and the next attempt
 * number (Temporal allows the id again because the failed run failed: ALLOW_DUPLICATE_FAILED_ONLY).
 * OperationStarted with the new run id is recorded here, so the operation is RUNNING when this returns.
 * The new run's events and agent calls carry the attempt in their keys, so it does not replay the failed
 * run's outcomes.
 *
 * A failed volume operation is taken up the same way (schema/commands/volumes.ts retryVolumeOperation).
 *
 * Not for BOOT: a failed boot has already left its instance in ERROR with everything released, and the
 * instance model has no way back to BUILDING; delete it and boot again (Nova's answer too). A fresh run
 * rather than Temporal's ResetWorkflowExecution: the failed run has compensated already, so replaying from
 * a mid-history point would start from a world that no longer exists.
 */
export async function retryOperation(rt: Runtime, caller: Caller, input: { id: string }): Promise<{ operation: Operation; instance?: Instance; volume?: Volume }> {
  requireAdmin(caller);
  const events = await rt.store.readStream(operationStream(input.id));
  const op = events.reduce((s, e) => operationDecider.evolve(s, e as never), null as Operation | null);
  if (!op) throw new StratusError('NOT_FOUND', `operation ${input.id} not found`, { id: input.id });
  if (op.status !== 'FAILED') throw new StratusError('CONFLICT', `operation ${op.id} is ${op.status}; only a FAILED operation can be retried`, { id: op.id, status: op.status });
  const kind = InstanceActionKind.safeParse(op.kind);
  const attempt = 1 + events.filter((e) => e.type === 'OperationFailed').length;
  const metadata = commandMetadata(caller, op.id);
  if (VolumeActionKind.safeParse(op.kind).success) {
    // The failed run released its volume (and instance) and compensated; the retry takes them again.
    const retried = await retryVolumeOperation(rt, op, attempt, metadata);
    if (!retried.runId) throw new StratusError('CONFLICT', `workflow of operation ${op.id} is still running`, { id: op.id });
    const operation = await recordRetryStart(rt, op.id, retried.runId, metadata);
    return { operation, volume: retried.volume, ...(retried.instance ? { instance: retried.instance } : {}) };
  }
  if (!kind.success) {
    throw new StratusError('CONFLICT', `a failed ${op.kind} cannot be retried: delete the instance and boot a new one`, { id: op.id, kind: op.kind });
  }
  const input_ = await workflowInputOf(rt, op, attempt);

  // The task first: the instance may have moved on (another action, deleted) and then the retry is refused.
  const { state, version } = await readInstanceState(rt, op.resourceId);
  const taskEvents = decideInstance(
    {
      type: 'beginAction',
      data: {
        operationId: op.id, kind: kind.data, at: now(),
        ...(op.kind === 'REBOOT' ? { hard: input_.hard ?? false } : {}),
        ...(input_.imageId ? { imageId: input_.imageId } : {}),
      },
    },
    state,
  );
  if (taskEvents.length > 0) await appendNew(rt, instanceStream(op.resourceId), taskEvents, version, metadata);

  const runId = await startOrCompensate(rt, op.kind, input_, WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY);
  if (!runId) throw new StratusError('CONFLICT', `workflow of operation ${op.id} is still running`, { id: op.id });
  const operation = await recordRetryStart(rt, op.id, runId, metadata);
  const instance = taskEvents.reduce(instanceDecider.evolve, state);
  return { operation, ...(instance ? { instance } : {}) };
}

/** OperationStarted with the new run's id, so the operation is RUNNING when the retry returns. */
async function recordRetryStart(rt: Runtime, operationId: string, runId: string, metadata: ReturnType<typeof commandMetadata>): Promise<Operation> {
  const { state: operation } = await decideAndAppend(
    rt,
    operationStream(operationId),
    operationDecider,
    (s) => decideOperation({ type: 'start', data: { runId, at: now() } }, s),
    // The run's first step decides the same start; whichever lands second decides nothing.
    { key: `retry:${operationId}:${runId}:${randomUUID()}`, metadata: { ...metadata, runId }, rounds: 10 },
  );
  return operation!;
}
