import { powerAction } from './powerAction.js';
import type { OperationInput } from './runbook.js';

/** Pause: pauseVm on the instance's host, then recordPaused. */
export async function pauseInstance(input: OperationInput): Promise<void> {
  await powerAction(input, { vm: 'pauseVm', record: 'recordPaused', result: { kind: 'PAUSE' } });
}
