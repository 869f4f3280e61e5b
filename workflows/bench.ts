import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

const { noop } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds' });

/** The boot benchmark's baseline: what `n` activities cost through Temporal alone, with no work in them. */
export async function bareWorkflow(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await noop();
}
