import { workflowStarter, type Runtime } from '../server/runtime.js';
import { bareWorkflow } from '../workflows/bench.js';

/**
 * The engine-only baseline the benches divide by: a workflow of `activities` no-op activities, started the
 * way every operation is started (`workflowStarter`: eager beside this process's own worker), so that the
 * ratio compares like with like.
 */
export function runBareWorkflow(rt: Runtime, taskQueue: string, workflowId: string, activities: number): Promise<void> {
  const { client, startOptions } = workflowStarter(rt);
  return client.workflow.execute(bareWorkflow, { taskQueue, workflowId, args: [activities], ...startOptions });
}
