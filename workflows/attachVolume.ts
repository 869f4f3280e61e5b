import { Compensations, steps, undoSteps } from './runbook.js';
import { recordVolumeFailure, volumeContext, type VolumeOperationInput } from './volumeRunbook.js';

/**
 * Attach: plug the volume into the instance's VM (hot on a running one, at next start on a stopped or
 * paused one), record it IN_USE with its device. On failure the VM lets go of it again and the volume is
 * AVAILABLE as before.
 */
export async function attachVolume(input: VolumeOperationInput): Promise<void> {
  const ctx = volumeContext(input);
  const undo = new Compensations();
  try {
    // Added first: an attach whose agent call landed but whose report was lost must still be undone.
    undo.add(() => undoSteps.detachFromVm(ctx));
    const { device } = await steps.attachToVm(ctx);
    await steps.recordVolumeDone(ctx, { step: 'recordInUse', device });
  } catch (err) {
    await undo.runInReverse();
    await recordVolumeFailure(ctx, err);
  }
}
