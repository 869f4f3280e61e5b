import { powerAction } from './powerAction.js';
import type { OperationInput } from './runbook.js';

/** Suspend: suspendVm on the instance's host, then recordSuspended. */
export async function suspendInstance(input: OperationInput): Promise<void> {
  await powerAction(input, { vm: 'suspendVm', record: 'recordSuspended', result: { kind: 'SUSPEND' } });
}
