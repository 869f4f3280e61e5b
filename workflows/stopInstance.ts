import { powerAction } from './powerAction.js';
import type { OperationInput } from './runbook.js';

/** Stop: stopVm on the instance's host, then recordStopped. */
export async function stopInstance(input: OperationInput): Promise<void> {
  await powerAction(input, { vm: 'stopVm', record: 'recordStopped', result: { kind: 'STOP' } });
}
