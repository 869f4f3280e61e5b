import { patched } from '@temporalio/workflow';
import { Compensations, eventSteps, failureOf, holdForOperator, operationContext, recordFailure, steps, undoSteps, type OperationInput } from './runbook.js';

/** Boots that set up the host (port, VM, start, RUNNING recorded) in one activity when there is no image to fetch. */
export const BOOT_HOST_STEPS_AS_ONE = 'boot-host-steps-as-one-activity';

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
    const withAddress = patched('boot-allocates-address');
    // With nothing to fetch, the host's three steps and recordRunning run as one activity
    // (setUpOnHost), each still its own step of the operation. Not when a failed run is held for an
    // operator's reset (failureHoldMs): a reset resumes at the failed step's activity, so there each
    // step keeps an activity of its own and nothing before the failed one runs twice. Boots recorded
    // before this replay with one activity per step.
    const hostStepsAsOne = withAddress && input.fetchImage === false && !input.failureHoldMs && patched(BOOT_HOST_STEPS_AS_ONE);
    if (withAddress) {
      undo.add(() => undoSteps.releaseFixedAddress(ctx));
      await record.allocateFixedAddress(ctx);
      undo.add(() => undoSteps.unplugBootPort(ctx));
      if (!hostStepsAsOne) await steps.plugBootPort(ctx);
    }
    if (hostStepsAsOne) {
      // Destroying a VM that was never made, or unplugging a port never plugged, is a no-op: both undos
      // are in place before the activity that may have done either. It records RUNNING too.
      undo.add(() => undoSteps.destroyVm(ctx));
      await steps.setUpOnHost(ctx);
    } else {
      // Histories recorded before hosts fetched images have no such activity; they replay without it.
      // Boots started before the command said whether there is anything to fetch (no fetchImage in
      // their input) run the step, as they did.
      if (patched('boot-fetches-image') && input.fetchImage !== false) await steps.fetchImage(ctx);
      undo.add(() => undoSteps.destroyVm(ctx));
      await steps.createVm(ctx);
      await steps.startVm(ctx);
      await record.recordRunning(ctx);
    }
  } catch (err) {
    await holdForOperator(ctx, input, err);
    // NO_VALID_HOST is the scheduler's refusal: it claimed nothing, so there is nothing to undo.
    if (failureOf(err).code !== 'NO_VALID_HOST') await undo.runInReverse();
    await recordFailure(ctx, err, { instanceError: true });
  }
}
