import { steps } from './runbook.js';
import { recordVolumeFailure, volumeContext, type VolumeOperationInput } from './volumeRunbook.js';

/** Detach: unplug the volume from the instance's VM (cold when it is stopped or paused), record it AVAILABLE. */
export async function detachVolume(input: VolumeOperationInput): Promise<void> {
  const ctx = volumeContext(input);
  try {
    await steps.detachFromVm(ctx);
    await steps.recordVolumeDone(ctx, { step: 'recordAvailable' });
  } catch (err) {
    await recordVolumeFailure(ctx, err);
  }
}
