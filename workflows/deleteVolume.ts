import { steps } from './runbook.js';
import { recordVolumeFailure, volumeContext, type VolumeOperationInput } from './volumeRunbook.js';

/** Delete: remove the volume's file and its snapshots from the pool, record it DELETED. */
export async function deleteVolume(input: VolumeOperationInput): Promise<void> {
  const ctx = volumeContext(input);
  try {
    await steps.deleteVolumeFile(ctx);
    await steps.recordVolumeDone(ctx, { step: 'recordDeleted' });
  } catch (err) {
    await recordVolumeFailure(ctx, err);
  }
}
