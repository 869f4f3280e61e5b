import { patched } from '@temporalio/workflow';
import type { OperationContext } from '../activities/index.js';
import type { MigrationPlan } from '../activities/migrationSteps.js';
import {
  COLD_MOVE_COPIES_DISK,
  MIGRATION_STEPS_COMPOSED,
  MOVES_FETCH_IMAGE,
  localSteps,
  operationContext,
  recordFailure,
  steps,
  undoSteps,
  type OperationInput,
} from './runbook.js';

/**
 * Migrate, as an operator would run it: claim room on the target before anything moves, plug the
 * instance's attachments there, fetch its image there (an uploaded one, when the target lacks it), then
 * move it (live: the target waits with migrateReceive and the source sends with migrateSend; cold: the
 * stopped VM is defined on the target, its disk copied there and removed from the source). Once the
 * VM is on the target the runbook only goes forward: switch the instance's host, release the source's
 * claim, record it. Any failure before that destroys the target's twin and releases its claim, so the
 * instance stays running on the source holding only the source.
 */
export async function migrateInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  const composed = !input.failureHoldMs && patched(MIGRATION_STEPS_COMPOSED);
  let plan: MigrationPlan;
  try {
    plan = await (composed ? localSteps : steps).claimTarget(ctx, input.targetHostId ? { targetHostId: input.targetHostId } : {});
  } catch (err) {
    // The scheduler's refusal claimed nothing: nothing to undo.
    return recordFailure(ctx, err, { instanceError: false });
  }
  try {
    if (composed && plan.live && !plan.fetchImage) await steps.moveLive(ctx, plan);
    else await moveStepByStep(ctx, plan);
  } catch (err) {
    let arrived = false;
    try {
      ({ arrived } = await undoSteps.abandonTarget(ctx, plan));
    } catch (undoErr) {
      return recordFailure(ctx, undoErr, { instanceError: false });
    }
    if (!arrived) return recordFailure(ctx, err, { instanceError: false });
  }
  if (composed) return undoSteps.finishMigration(ctx, plan);
  await undoSteps.switchHost(ctx, plan);
  await undoSteps.releaseSourceClaim(ctx, plan);
  await undoSteps.recordMigrated(ctx);
}

/** The move one activity per step: a cold one, one that fetches the image first, and runs from before MIGRATION_STEPS_COMPOSED. */
async function moveStepByStep(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
  await steps.plugAttachments(ctx, plan);
  if (plan.fetchImage && patched(MOVES_FETCH_IMAGE)) await steps.fetchImage(ctx, { hostId: plan.targetHostId });
  if (plan.live) {
    const endpoint = await steps.migrateReceive(ctx, plan);
    await steps.migrateSend(ctx, plan, endpoint);
  } else {
    await steps.defineOnTarget(ctx, plan);
    if (patched(COLD_MOVE_COPIES_DISK)) await steps.copyDisk(ctx, plan);
    await steps.removeFromSource(ctx, plan);
  }
}
