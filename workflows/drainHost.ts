import { ChildWorkflowFailure, executeChild } from '@temporalio/workflow';
import type { ChildOutcome } from '../activities/drainSteps.js';
import { failureOf, operationContext, steps, undoSteps, type OperationInput } from './runbook.js';

/** How many instances a drain moves at once: enough to be quick, few enough not to swamp the hosts' links. */
export const DRAIN_CONCURRENCY = 3;

/**
 * Drain for maintenance (CloudStack's maintenance mode, Nova's host evacuate-live): the host is already
 * MAINTENANCE, so nothing new lands on it. List its instances and migrate each away as a child workflow
 * (its own MIGRATE operation on the instance, a few at a time). An instance that cannot move stays where
 * it is, and the drain's outcome names it.
 */
export async function drainHost(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  const instanceIds = await steps.listInstances(ctx);
  const outcomes: ChildOutcome[] = [];
  const queue = [...instanceIds];
  const worker = async () => {
    for (let instanceId = queue.shift(); instanceId !== undefined; instanceId = queue.shift()) {
      outcomes.push(await moveOne(input, instanceId));
    }
  };
  await Promise.all(Array.from({ length: Math.min(DRAIN_CONCURRENCY, instanceIds.length) }, worker));
  await undoSteps.recordHostOperation(ctx, { step: 'recordDrained', outcomes });
}

async function moveOne(input: OperationInput, instanceId: string): Promise<ChildOutcome> {
  const ctx = operationContext(input);
  const child = await undoSteps.openChild(ctx, { instanceId, kind: 'MIGRATE' });
  if ('refused' in child) return { instanceId, status: 'FAILED', ...child.refused };
  try {
    await executeChild('migrateInstance', {
      workflowId: child.workflowId,
      args: [{ operationId: child.operationId, instanceId, actor: input.actor, attempt: 1 } satisfies OperationInput],
    });
    return { instanceId, operationId: child.operationId, status: 'SUCCEEDED' };
  } catch (err) {
    const cause = err instanceof ChildWorkflowFailure && err.cause ? err.cause : err;
    return { instanceId, operationId: child.operationId, status: 'FAILED', ...failureOf(cause) };
  }
}
