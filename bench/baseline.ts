import type { Runtime } from '../server/runtime.js';
import { bareWorkflow } from '../workflows/bench.js';

/**
 * The engine-only baseline the benches divide by: a workflow of `activities` no-op activities, started the
 * way every operation is started in a process that runs its own worker (schema/commands/operations.ts):
 * with Temporal's eager start when this process's worker owns the task queue, so that the ratio compares
 * like with like.
 */
export function runBareWorkflow(rt: Runtime, taskQueue: string, workflowId: string, activities: number): Promise<void> {
  const starter = rt.eagerStarter ?? rt.temporal;
  return starter.workflow.execute(bareWorkflow, {
    taskQueue,
    workflowId,
    args: [activities],
    ...(rt.eagerStarter ? { requestEagerStart: true } : {}),
  });
}
