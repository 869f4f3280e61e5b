import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { StratusError } from '../../domain/errors.js';
import { instanceStream, operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { instanceDecider, type Instance } from '../../domain/instance.js';
import { operationDecider, workflowIdOf, type Operation, type OperationKind } from '../../domain/operation.js';
import { readFolded } from '../../activities/events.js';
import { failOperation, type OperationContext } from '../../activities/operationSteps.js';
import { recordOnInstance } from '../../activities/instanceRecords.js';
import type { EventMetadata, Queryable } from '../../eventstore/index.js';
import { componentLog } from '../../server/log.js';
import { workflowStarter, type Runtime } from '../../server/runtime.js';
import type { OperationInput } from '../../workflows/runbook.js';

const log = componentLog('commands');

/** What every lifecycle command returns (CONTRACT.md `OperationPayload`): the operation and its instance now. */
export interface LifecycleResult {
  operation: Operation;
  instance?: Instance;
}

/** The workflow type (workflows/index.ts export) that runs each kind. */
export const workflowTypeOf: Partial<Record<OperationKind, string>> = {
  BOOT: 'bootInstance',
  START: 'startInstance',
  STOP: 'stopInstance',
  REBOOT: 'rebootInstance',
  PAUSE: 'pauseInstance',
  UNPAUSE: 'unpauseInstance',
  SUSPEND: 'suspendInstance',
  RESUME: 'resumeInstance',
  DELETE: 'deleteInstance',
  CREATE_VOLUME: 'createVolume',
  DELETE_VOLUME: 'deleteVolume',
  ATTACH_VOLUME: 'attachVolume',
  DETACH_VOLUME: 'detachVolume',
  SNAPSHOT_VOLUME: 'snapshotVolume',
  SNAPSHOT: 'snapshotInstance',
  ALLOCATE_IP: 'allocateIp',
  RELEASE_IP: 'releaseIp',
  ASSOCIATE_IP: 'associateIp',
  DISASSOCIATE_IP: 'disassociateIp',
  UPDATE_SECURITY_GROUPS: 'updateSecurityGroups',
  MIGRATE: 'migrateInstance',
  RESIZE: 'resizeInstance',
  DRAIN_HOST: 'drainHost',
  EVACUATE_HOST: 'evacuateHost',
  EVACUATE: 'evacuateInstance',
};

export const now = () => new Date().toISOString();

export const commandMetadata = (caller: Caller, operationId?: string): EventMetadata => ({
  actor: caller.tokenId,
  ...(operationId ? { operationId, workflowId: workflowIdOf(operationId) } : {}),
});

/**
 * Appends a command's decided events. Command event ids are random, not name-based: two racing twins of
 * one request must collide on the stream version (and one lose), not pass as each other's retry.
 */
export async function appendNew(
  rt: Runtime,
  streamId: string,
  events: { type: string; data: unknown }[],
  expectedVersion: number | 'noStream',
  metadata: EventMetadata,
  tx?: Queryable,
) {
  return rt.store.append(
    streamId,
    events.map((e) => ({ id: randomUUID(), type: e.type, data: e.data, metadata }) as never),
    { expectedVersion, ...(tx ? { tx } : {}) },
  );
}

export async function readOperation(rt: Runtime, operationId: string): Promise<Operation | null> {
  return (await readFolded(rt, operationStream(operationId), operationDecider)).state;
}

export async function readInstanceState(rt: Runtime, instanceId: string): Promise<{ state: Instance | null; version: number }> {
  return readFolded(rt, instanceStream(instanceId), instanceDecider);
}

/** The workflow input of an operation, rebuilt from its streams (a PENDING one whose start was lost, a retry). */
export async function workflowInputOf(rt: Runtime, op: Operation, attempt: number): Promise<OperationInput> {
  const input: OperationInput = { operationId: op.id, instanceId: op.resourceId, actor: op.actor.tokenId, attempt };
  if (op.kind === 'REBOOT') {
    const events = await rt.store.readStream(instanceStream(op.resourceId));
    const began = events.findLast((e) => e.type === 'InstanceTaskStarted' && e.data.operationId === op.id);
    input.hard = began?.type === 'InstanceTaskStarted' ? (began.data.hard ?? false) : false;
  }
  if (op.kind === 'SNAPSHOT') {
    const events = await rt.store.readStream(instanceStream(op.resourceId));
    const began = events.findLast((e) => e.type === 'InstanceTaskStarted' && e.data.operationId === op.id && e.data.imageId !== undefined);
    if (began?.type === 'InstanceTaskStarted' && began.data.imageId) input.imageId = began.data.imageId;
  }
  if (op.kind === 'MIGRATE' || op.kind === 'RESIZE') {
    const events = await rt.store.readStream(instanceStream(op.resourceId));
    const began = events.findLast((e) => e.type === 'InstanceTaskStarted' && e.data.operationId === op.id);
    if (began?.type === 'InstanceTaskStarted' && began.data.targetHostId) input.targetHostId = began.data.targetHostId;
    if (began?.type === 'InstanceTaskStarted' && began.data.flavor) input.flavorId = began.data.flavor.id;
  }
  return input;
}

/**
 * The answer to a repeated clientRequestId: the first operation, as it is now, and nothing started. Used
 * for another kind of request or another resource, the id is refused. A first request whose process died
 * between its commit and its workflow start is still PENDING: starting the workflow again here heals it
 * (an already running workflow id is not started twice).
 */
export async function repeatedRequest(
  rt: Runtime,
  operationId: string,
  request: { kind: OperationKind; projectId?: string; resourceId?: string },
): Promise<LifecycleResult | undefined> {
  const op = await readOperation(rt, operationId);
  if (!op) return undefined;
  // The operation id already names the caller's project (operationIdFor); kind and target must match too.
  const same =
    op.kind === request.kind &&
    (request.projectId === undefined || op.projectId === request.projectId) &&
    (request.resourceId === undefined || op.resourceId === request.resourceId);
  if (!same) {
    throw new StratusError('CONFLICT', 'this clientRequestId was already used for another request', { operationId: op.id });
  }
  if (op.status === 'PENDING') await startOperationWorkflow(rt, op.kind, await workflowInputOf(rt, op, 1));
  const { state: instance } = await readInstanceState(rt, op.resourceId);
  return { operation: op, ...(instance ? { instance } : {}) };
}

/**
 * Starts `op-<operationId>` on the task queue. REJECT_DUPLICATE for a first run: an id that already ran
 * is never run again by accident; `retryOperation` passes ALLOW_DUPLICATE_FAILED_ONLY. Returns the new
 * run's id, or undefined when that workflow id is already running (a repeat; nothing to do).
 */
export async function startOperationWorkflow(
  rt: Runtime,
  kind: OperationKind,
  input: OperationInput,
  reuse: WorkflowIdReusePolicy = WorkflowIdReusePolicy.REJECT_DUPLICATE,
): Promise<string | undefined> {
  const workflowType = workflowTypeOf[kind];
  if (!workflowType) throw new StratusError('INTERNAL', `no workflow runs ${kind} operations`);
  try {
    // Beside an in-process worker the first workflow task comes straight back to it (eager start);
    // when that worker has no free slot the server dispatches the task as usual.
    const { client, startOptions } = workflowStarter(rt);
    const handle = await client.workflow.start(workflowType, {
      taskQueue: rt.config.taskQueue,
      workflowId: workflowIdOf(input.operationId),
      // The hold is the deployment's setting at start: a run keeps the window it began with.
      args: [rt.config.failureHoldMs ? { ...input, failureHoldMs: rt.config.failureHoldMs } : input],
      workflowIdReusePolicy: reuse,
      ...startOptions,
    });
    return handle.firstExecutionRunId;
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError) return undefined;
    throw e;
  }
}

/**
 * Starts the operation's workflow; if Temporal cannot be reached, undoes what the command recorded
 * (the instance's task released, a boot's instance in ERROR, the operation FAILED with INTERNAL) so
 * nothing is left holding the instance, and reports INTERNAL.
 */
export async function startOrCompensate(rt: Runtime, kind: OperationKind, input: OperationInput, reuse?: WorkflowIdReusePolicy): Promise<string | undefined> {
  try {
    return await startOperationWorkflow(rt, kind, input, reuse);
  } catch (e) {
    log.error({ err: e, operationId: input.operationId }, 'could not start the workflow; compensating');
    const message = `could not start workflow ${workflowIdOf(input.operationId)}: ${(e as Error).message}`;
    const ctx: OperationContext = { ...input, workflowId: workflowIdOf(input.operationId), runId: '' };
    await recordOnInstance(rt, ctx, `${input.operationId}:a${input.attempt}:startFailed`, () => [
      ...(kind === 'BOOT' ? [{ type: 'recordFailure' as const, data: { operationId: input.operationId, code: 'INTERNAL', message, at: now() } }] : []),
      { type: 'finishAction', data: { operationId: input.operationId, outcome: 'FAILED', at: now() } },
    ]);
    await failOperation(rt, ctx, { code: 'INTERNAL', message });
    throw new StratusError('INTERNAL', message, { operationId: input.operationId });
  }
}
