import { patched } from '@temporalio/workflow';
import type { EvacuationPlan } from '../activities/evacuationSteps.js';
import { MOVES_FETCH_IMAGE, operationContext, recordFailure, steps, undoSteps, type OperationInput } from './runbook.js';

/**
 * Evacuate one instance of a DOWN host (Nova's evacuate): claim room on another host, plug its
 * attachments there, fetch its image there, make the VM anew from it and start it if it was running,
 * then record where it lives and release what it held on the dead host. The VM left on the dead host is destroyed when that
 * host answers again (fencing, activities/hostHealth.ts). A failure before the record undoes the rebuild.
 */
export async function evacuateInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  let plan: EvacuationPlan;
  try {
    plan = await steps.claimEvacuationTarget(ctx);
  } catch (err) {
    return recordFailure(ctx, err, { instanceError: false });
  }
  try {
    await steps.plugAttachments(ctx, plan);
    if (plan.fetchImage && patched(MOVES_FETCH_IMAGE)) await steps.fetchImage(ctx, { hostId: plan.targetHostId });
    await steps.rebuildOnTarget(ctx, plan);
  } catch (err) {
    await undoSteps.dropRebuild(ctx, plan);
    return recordFailure(ctx, err, { instanceError: false });
  }
  await undoSteps.recordEvacuated(ctx, plan);
  await undoSteps.releaseSourceClaim(ctx, plan);
  await undoSteps.finishEvacuation(ctx);
}
