import { patched } from '@temporalio/workflow';
import { Compensations, failureOf, operationContext, recordFailure, steps, undoSteps, type OperationInput } from './runbook.js';

/**
 * Boot, as an operator would run it: schedule (pick a host and claim its capacity), allocate its fixed
 * address, plug its port on the host, create the VM, start it, record it running. On failure, undo in
 * reverse (destroy the half-made VM, unplug the port, give the address and the claim back) and record
 * the instance ERROR with the reason and the operation FAILED.
 */
export async function bootInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  const undo = new Compensations();
  try {
    // Added first: a schedule whose claim landed but whose report was lost must still give it back.
    undo.add(() => undoSteps.releaseClaim(ctx));
    await steps.schedule(ctx);
    // Versioned: boots recorded before networking replay without the address step.
    if (patched('boot-allocates-address')) {
      undo.add(() => undoSteps.releaseFixedAddress(ctx));
      await steps.allocateFixedAddress(ctx);
      undo.add(() => undoSteps.unplugBootPort(ctx));
      await steps.plugBootPort(ctx);
    }
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
