import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { MeteringClockInput } from '../workflows/meteringClock.js';
import type { Runtime } from './runtime.js';

export const METERING_CLOCK_WORKFLOW_ID = 'stratus-metering-clock';

/** Starts the deployment's metering clock on the runtime's task queue, or leaves the one running alone. */
export async function ensureMeteringClock(rt: Runtime, input: MeteringClockInput = {}, workflowId = METERING_CLOCK_WORKFLOW_ID): Promise<void> {
  try {
    await rt.temporal.workflow.start('meteringClock', { workflowId, taskQueue: rt.config.taskQueue, args: [input] });
  } catch (e) {
    if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
  }
}
