import { Compensations, steps, undoSteps } from './runbook.js';
import { recordVolumeFailure, volumeContext, type VolumeOperationInput } from './volumeRunbook.js';

/** Create: make the qcow2 file in the storage pool (from a snapshot when asked), record it AVAILABLE. */
export async function createVolume(input: VolumeOperationInput): Promise<void> {
  const ctx = volumeContext(input);
  const undo = new Compensations();
  try {
    undo.add(() => undoSteps.deleteVolumeFile(ctx));
    await steps.createVolumeFile(ctx);
    await steps.recordVolumeDone(ctx, { step: 'recordAvailable' });
  } catch (err) {
    await undo.runInReverse();
    await recordVolumeFailure(ctx, err);
  }
}
