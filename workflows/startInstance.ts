import { powerAction } from './powerAction.js';
import type { OperationInput } from './runbook.js';

/** Start: startVm on the instance's host, then recordStarted. */
export async function startInstance(input: OperationInput): Promise<void> {
  await powerAction(input, { vm: 'startVm', record: 'recordStarted', result: { kind: 'START' } });
}
