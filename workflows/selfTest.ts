import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { SelfTestActivities } from '../activities/selfTest.js';

const { recordSelfTest } = proxyActivities<SelfTestActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '100 ms', maximumAttempts: 5 },
});

/**
 * The controller's self-test: proves that a worker runs workflows and that their activities reach the
 * event store. The event id is fixed by the caller, so however often the activity is retried the log
 * holds the event once.
 */
export async function selfTest(input: { streamId: string; eventId: string }): Promise<{ position: string }> {
  const { workflowId, runId } = workflowInfo();
  return recordSelfTest({ ...input, workflowId, runId });
}
