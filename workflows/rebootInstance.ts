import { powerAction } from './powerAction.js';
import type { OperationInput } from './runbook.js';

/**
 * Reboot: rebootVm (soft asks the guest; hard power-cycles the VM from whatever state it is in), then
 * recordRebooted.
 */
export async function rebootInstance(input: OperationInput): Promise<void> {
  const hard = input.hard ?? false;
  await powerAction({ ...input, hard }, { vm: 'rebootVm', record: 'recordRebooted', result: { kind: 'REBOOT', hard } });
}
