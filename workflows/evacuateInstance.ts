import { patched } from '@temporalio/workflow';
import type { EvacuationPlan } from '../activities/evacuationSteps.js';
import type { OperationContext } from '../activities/index.js';
import { MOVES_FETCH_IMAGE, operationContext, recordFailure, steps, undoSteps, type OperationInput } from './runbook.js';

/**
 * Since this patch an evacuation records the move before it starts the rebuilt VM, and the move is refused
 * once the instance's host has answered again; runs recorded before it started the VM first and replay on
 * that path (`test/histories/evacuateInstance.v1.json`, `evacuateInstance-failed.v1.json`).
 */
export const EVACUATION_MOVES_BEFORE_START = 'evacuation-moves-before-start';

/**
 * Evacuate one instance of a DOWN host (Nova's evacuate): claim room on another host, plug its
 * attachments there, fetch its image there, define the VM anew from it, record that the instance lives there now, release
 * what it held on the dead host and start it if it was running. The move is the point of no return, decided
 * on the instance's stream against its host's return: a host that answered first keeps the instance and
 * the rebuild is undone; once moved, the VM left on the dead host is destroyed when that host answers again
 * (fencing, activities/hostHealth.ts), and a start that fails leaves the instance ERROR on its new host.
 */
export async function evacuateInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  let plan: EvacuationPlan;
  try {
    plan = await steps.claimEvacuationTarget(ctx);
  } catch (err) {
    return recordFailure(ctx, err, { instanceError: false });
  }
  if (!patched(EVACUATION_MOVES_BEFORE_START)) return rebuildThenMove(ctx, plan);
  try {
    await steps.plugAttachments(ctx, plan);
    if (plan.fetchImage && patched(MOVES_FETCH_IMAGE)) await steps.fetchImage(ctx, { hostId: plan.targetHostId });
    await steps.defineRebuild(ctx, plan);
    await undoSteps.recordEvacuated(ctx, plan);
  } catch (err) {
    await undoSteps.dropRebuild(ctx, plan);
    return recordFailure(ctx, err, { instanceError: false });
  }
  await undoSteps.releaseSourceClaim(ctx, plan);
  if (plan.wasRunning) {
    try {
      await steps.startRebuilt(ctx, plan);
    } catch (err) {
      return recordFailure(ctx, err, { instanceError: true });
    }
  }
  await undoSteps.finishEvacuation(ctx);
}

/** The runbook before EVACUATION_MOVES_BEFORE_START, for the runs that began on it. */
async function rebuildThenMove(ctx: OperationContext, plan: EvacuationPlan): Promise<void> {
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
