import { patched } from '@temporalio/workflow';
import { Compensations, eventSteps, failureOf, holdForOperator, operationContext, recordFailure, steps, undoSteps, type OperationInput } from './runbook.js';

/**
 * Boot, as an operator would run it: schedule (pick a host and claim its capacity), allocate its fixed
 * address, plug its port on the host, fetch the image to the host when it lacks it, create the VM,
 * start it, record it running. On failure, undo in reverse (destroy the half-made VM, unplug the port,
 * give the address and the claim back) and record the instance ERROR with the reason and the
 * operation FAILED.
 */
export async function bootInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  const undo = new Compensations();
  const record = eventSteps();
  try {
    // Added first: a schedule whose claim landed but whose report was lost must still give it back.
    undo.add(() => undoSteps.releaseClaim(ctx));
    await record.schedule(ctx);
    // Versioned: boots recorded before networking replay without the address step.
    if (patched('boot-allocates-address')) {
      undo.add(() => undoSteps.releaseFixedAddress(ctx));
      await record.allocateFixedAddress(ctx);
      undo.add(() => undoSteps.unplugBootPort(ctx));
      await steps.plugBootPort(ctx);
    }
    // Histories recorded before hosts fetched images have no such activity; they replay without it.
    // Boots started before the command said whether there is anything to fetch (no fetchImage in
    // their input) run the step, as they did.
    if (patched('boot-fetches-image') && input.fetchImage !== false) await steps.fetchImage(ctx);
    undo.add(() => undoSteps.destroyVm(ctx));
    await steps.createVm(ctx);
    await steps.startVm(ctx);
    await record.recordRunning(ctx);
  } catch (err) {
    await holdForOperator(ctx, input, err);
    // NO_VALID_HOST is the scheduler's refusal: it claimed nothing, so there is nothing to undo.
    if (failureOf(err).code !== 'NO_VALID_HOST') await undo.runInReverse();
    await recordFailure(ctx, err, { instanceError: true });
  }
}
