import { powerAction } from './powerAction.js';
import type { OperationInput } from './runbook.js';

/** Unpause: unpauseVm on the instance's host, then recordUnpaused. */
export async function unpauseInstance(input: OperationInput): Promise<void> {
  await powerAction(input, { vm: 'unpauseVm', record: 'recordUnpaused', result: { kind: 'UNPAUSE' } });
}
