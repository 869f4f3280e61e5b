import { patched } from '@temporalio/workflow';
import { operationContext, recordFailure, steps, type OperationInput } from './runbook.js';

/** Delete: destroy the VM and its disk on the host, give the host's capacity back, release its fixed addresses (floating ones are only disassociated), record the instance DELETED. */
export async function deleteInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  try {
    await steps.destroyVm(ctx);
    await steps.releaseClaim(ctx);
    // Versioned: deletes recorded before networking replay without the address step.
    if (patched('delete-releases-addresses')) await steps.releaseInstanceAddresses(ctx);
    await steps.recordTransition(ctx, { step: 'recordDeleted', result: { kind: 'DELETE' } });
  } catch (err) {
    await recordFailure(ctx, err, { instanceError: false });
  }
}
