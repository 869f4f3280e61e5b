import { randomUUID } from 'node:crypto';
import { StratusError } from '../../domain/errors.js';
import { operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import type { Instance } from '../../domain/instance.js';
import { decideOperation, operationDecider, type Operation } from '../../domain/operation.js';
import { decideAndAppend } from '../../activities/events.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin } from './access.js';
import { commandMetadata, now, readInstanceState, readOperation } from './operations.js';

type ResetRequest = Parameters<Runtime['temporal']['workflowService']['resetWorkflowExecution']>[0];
type HistoryEvent = NonNullable<Awaited<ReturnType<ReturnType<Runtime['temporal']['workflow']['getHandle']>['fetchHistory']>>['events']>[number];

// History event ids are int64: protobufjs hands them over as Long objects or numbers.
const idOf = (v: unknown): number => Number(String(v));

/**
 * The workflow task to reset to: the one whose commands scheduled the failed step's activity. Resetting
 * there keeps every event before it (the steps that succeeded, with their results) and runs that task
 * again, so the failed step is scheduled anew and nothing before it is redone. A held run has failed
 * exactly one activity (its undo has not begun), so the first failed or timed-out activity is the step.
 */
function resetPoint(events: HistoryEvent[]): number | undefined {
  const failed = events.find((e) => e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes);
  const scheduledId = failed?.activityTaskFailedEventAttributes?.scheduledEventId ?? failed?.activityTaskTimedOutEventAttributes?.scheduledEventId;
  if (scheduledId == null) return undefined;
  const scheduled = events.find((e) => idOf(e.eventId) === idOf(scheduledId));
  const task = scheduled?.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId;
  return task == null ? undefined : idOf(task);
}

/**
 * resetOperation (admin): Temporal's reset of a FAILED operation's workflow to just before its failed
 * step. Only a run that is still held (STRATUS_FAILURE_HOLD; workflows/runbook.ts holdForOperator) can
 * be reset: it has not undone its steps, so the VM it made and the capacity it claimed are still
 * there for the steps after the reset point. A run that has already undone them is CONFLICT: the world
 * the reset would resume in is gone, and retryOperation (a fresh run from the start) is the way.
 *
 * OperationReset is recorded before Temporal is asked, so the reset shows in the steps ahead of
 * anything the new run records; if Temporal refuses, the operation is failed again with its error.
 */
export async function resetOperation(rt: Runtime, caller: Caller, input: { id: string }): Promise<{ operation: Operation; instance?: Instance }> {
  requireAdmin(caller);
  const op = await readOperation(rt, input.id);
  if (!op) throw new StratusError('NOT_FOUND', `operation ${input.id} not found`, { id: input.id });
  if (op.status !== 'FAILED' || !op.error) {
    throw new StratusError('CONFLICT', `operation ${op.id} is ${op.status}; only a FAILED operation can be reset`, { id: op.id, status: op.status });
  }
  const handle = rt.temporal.workflow.getHandle(op.workflowId);
  const description = await handle.describe();
  if (description.status.name !== 'RUNNING') {
    throw new StratusError(
      'CONFLICT',
      `the failed run of operation ${op.id} has already undone its steps (it was not held: STRATUS_FAILURE_HOLD); use retryOperation`,
      { id: op.id, workflowStatus: description.status.name },
    );
  }
  const history = await handle.fetchHistory();
  const resetEventId = resetPoint(history.events ?? []);
  const fromStep = op.steps.findLast((s) => s.status === 'FAILED')?.name;
  if (resetEventId === undefined || !fromStep) {
    throw new StratusError('CONFLICT', `operation ${op.id} has no failed step to reset to`, { id: op.id });
  }
  const metadata = { ...commandMetadata(caller, op.id), runId: description.runId };
  const record = (command: Parameters<typeof decideOperation>[0]) =>
    decideAndAppend(rt, operationStream(op.id), operationDecider, (s) => decideOperation(command, s), { key: `reset:${op.id}:${randomUUID()}`, metadata, rounds: 10 });

  const { state: operation } = await record({ type: 'reset', data: { fromStep, resetEventId, at: now() } });
  try {
    await rt.temporal.workflowService.resetWorkflowExecution({
      namespace: rt.config.temporalNamespace,
      workflowExecution: { workflowId: op.workflowId, runId: description.runId },
      reason: `resetOperation by ${caller.tokenId}: back to before ${fromStep}`,
      // protobufjs encodes a plain number as an int64.
      workflowTaskFinishEventId: resetEventId as unknown as NonNullable<ResetRequest['workflowTaskFinishEventId']>,
      requestId: randomUUID(),
    });
  } catch (e) {
    await record({ type: 'fail', data: { ...op.error, at: now() } });
    throw new StratusError('INTERNAL', `Temporal refused to reset ${op.workflowId}: ${(e as Error).message}`, { id: op.id });
  }
  const { state: instance } = await readInstanceState(rt, op.resourceId);
  return { operation: operation!, ...(instance ? { instance } : {}) };
}
