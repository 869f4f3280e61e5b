import { patched } from '@temporalio/workflow';
import { Compensations, failureOf, operationContext, recordFailure, steps, undoSteps, type OperationInput } from './runbook.js';

/**
 * Boot, as an operator would run it: schedule (pick a host and claim its capacity), fetch the image to
 * the host when it lacks it, create the VM, start it, record it running. On failure, undo in reverse (destroy the half-made VM, give the claim back) and
 * record the instance ERROR with the reason and the operation FAILED.
 */
export async function bootInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  const undo = new Compensations();
  try {
    // Added first: a schedule whose claim landed but whose report was lost must still give it back.
    undo.add(() => undoSteps.releaseClaim(ctx));
    await steps.schedule(ctx);
    // Histories recorded before hosts fetched images have no such activity; they replay without it.
    if (patched('boot-fetches-image')) await steps.fetchImage(ctx);
    undo.add(() => undoSteps.destroyVm(ctx));
    await steps.createVm(ctx);
    await steps.startVm(ctx);
    await steps.recordRunning(ctx);
  } catch (err) {
    // NO_VALID_HOST is the scheduler's refusal: it claimed nothing, so there is nothing to undo.
    if (failureOf(err).code !== 'NO_VALID_HOST') await undo.runInReverse();
    await recordFailure(ctx, err, { instanceError: true });
  }
}
