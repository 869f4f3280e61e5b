import { powerAction } from './powerAction.js';
import type { OperationInput } from './runbook.js';

/** Resume: resumeVm on the instance's host, then recordResumed. */
export async function resumeInstance(input: OperationInput): Promise<void> {
  await powerAction(input, { vm: 'resumeVm', record: 'recordResumed', result: { kind: 'RESUME' } });
}
