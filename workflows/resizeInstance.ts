import { patched } from '@temporalio/workflow';
import type { ResizePlan } from '../activities/resizeSteps.js';
import { COLD_MOVE_COPIES_DISK, Compensations, MOVES_FETCH_IMAGE, operationContext, recordFailure, steps, undoSteps, type OperationInput } from './runbook.js';

/**
 * Resize, as an operator would run it: claim the new flavor (in one step on the instance's own host when
 * it has room, else on another host), stop the instance if it runs, give the VM its new size (in place,
 * or by fetching its image to the other host, defining it there and removing it here: a cold
 * migration), record the new flavor, and start it again if it was running. Until the VM has its new size every failure undoes: the claim
 * goes back, the other host's twin is destroyed, the instance runs again where it was.
 */
export async function resizeInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  let plan: ResizePlan;
  try {
    plan = await steps.claimResize(ctx, { flavorId: input.flavorId! });
  } catch (err) {
    return recordFailure(ctx, err, { instanceError: false });
  }
  const inPlace = plan.targetHostId === plan.sourceHostId;
  const move = { ...plan, live: false };
  const undo = new Compensations();
  try {
    undo.add(() => (inPlace ? undoSteps.restoreClaim(ctx, plan) : undoSteps.abandonTarget(ctx, move).then(() => undefined)));
    if (plan.wasRunning) {
      undo.add(() => undoSteps.restartOnSource(ctx, plan));
      await steps.stopForResize(ctx, plan);
    }
    if (inPlace) {
      await steps.resizeVm(ctx, plan);
    } else {
      await steps.plugAttachments(ctx, move);
      if (plan.fetchImage && patched(MOVES_FETCH_IMAGE)) await steps.fetchImage(ctx, { hostId: plan.targetHostId });
      await steps.defineResized(ctx, plan);
      if (patched(COLD_MOVE_COPIES_DISK)) await steps.copyDisk(ctx, move);
      await steps.removeFromSource(ctx, move);
    }
  } catch (err) {
    await undo.runInReverse();
    return recordFailure(ctx, err, { instanceError: false });
  }
  // The VM has its new size: from here only forward. A start that fails leaves the instance in ERROR
  // with the reason (Nova's way), to be recovered with a hard reboot.
  try {
    await undoSteps.recordResized(ctx, plan);
    if (!inPlace) await undoSteps.releaseSourceClaim(ctx, move);
    if (plan.wasRunning) await steps.startResized(ctx, plan);
    await undoSteps.finishResize(ctx);
  } catch (err) {
    return recordFailure(ctx, err, { instanceError: true });
  }
}
