import { ChildWorkflowFailure, executeChild } from '@temporalio/workflow';
import type { ChildOutcome } from '../activities/drainSteps.js';
import { failureOf, operationContext, steps, undoSteps, type OperationInput } from './runbook.js';

/** How many instances a host operation moves at once: enough to be quick, few enough not to swamp the hosts' links. */
export const HOST_OPERATION_CONCURRENCY = 3;

/**
 * Drain for maintenance (CloudStack's maintenance mode, Nova's host evacuate-live): the host is already
 * MAINTENANCE, so nothing new lands on it. Migrate each of its instances away as a child workflow. An
 * instance that cannot move stays where it is, and the drain's outcome names it.
 */
export async function drainHost(input: OperationInput): Promise<void> {
  await forEachInstance(input, { kind: 'MIGRATE', workflowType: 'migrateInstance', record: 'recordDrained' });
}

/**
 * What drain and evacuate share: list the host's instances, run one child operation per instance (its own
 * operation on the instance, a few at a time, as Temporal child workflows), and record the outcome.
 */
export async function forEachInstance(
  input: OperationInput,
  child: { kind: 'MIGRATE' | 'EVACUATE'; workflowType: string; record: string },
): Promise<void> {
  const ctx = operationContext(input);
  const instanceIds = await steps.listInstances(ctx);
  const outcomes: ChildOutcome[] = [];
  const queue = [...instanceIds];
  const worker = async () => {
    for (let instanceId = queue.shift(); instanceId !== undefined; instanceId = queue.shift()) {
      outcomes.push(await runChild(input, instanceId, child));
    }
  };
  await Promise.all(Array.from({ length: Math.min(HOST_OPERATION_CONCURRENCY, instanceIds.length) }, worker));
  await undoSteps.recordHostOperation(ctx, { step: child.record, outcomes });
}

async function runChild(input: OperationInput, instanceId: string, child: { kind: 'MIGRATE' | 'EVACUATE'; workflowType: string }): Promise<ChildOutcome> {
  const ctx = operationContext(input);
  const opened = await undoSteps.openChild(ctx, { instanceId, kind: child.kind });
  if ('refused' in opened) return { instanceId, status: 'FAILED', ...opened.refused };
  try {
    await executeChild(child.workflowType, {
      workflowId: opened.workflowId,
      args: [{ operationId: opened.operationId, instanceId, actor: input.actor, attempt: 1 } satisfies OperationInput],
    });
    return { instanceId, operationId: opened.operationId, status: 'SUCCEEDED' };
  } catch (err) {
    const cause = err instanceof ChildWorkflowFailure && err.cause ? err.cause : err;
    return { instanceId, operationId: opened.operationId, status: 'FAILED', ...failureOf(cause) };
  }
}
