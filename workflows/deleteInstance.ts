import { patched } from '@temporalio/workflow';
import { eventSteps, operationContext, recordFailure, steps, type OperationInput } from './runbook.js';

/**
 * Delete: destroy the VM and its disk on the host, detach its volumes (they survive, AVAILABLE), give the
 * host's capacity back, release its fixed addresses (floating ones are only disassociated), record the
 * instance DELETED.
 */
export async function deleteInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  const record = eventSteps();
  try {
    await steps.destroyVm(ctx);
    // Histories recorded before volumes existed have no such step; they replay without it.
    if (patched('delete-releases-volumes')) await steps.releaseVolumes(ctx);
    await record.releaseClaim(ctx);
    // Versioned: deletes recorded before networking replay without the address step.
    if (patched('delete-releases-addresses')) await steps.releaseInstanceAddresses(ctx);
    await record.recordTransition(ctx, { step: 'recordDeleted', result: { kind: 'DELETE' } });
  } catch (err) {
    await recordFailure(ctx, err, { instanceError: false });
  }
}
