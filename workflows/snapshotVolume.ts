import { steps } from './runbook.js';
import { recordVolumeFailure, volumeContext, type VolumeOperationInput } from './volumeRunbook.js';

/** Snapshot: copy the detached volume's file to the snapshot's file in the pool, record the snapshot AVAILABLE. */
export async function snapshotVolume(input: VolumeOperationInput): Promise<void> {
  const ctx = volumeContext(input);
  try {
    await steps.snapshotVolumeFile(ctx);
    await steps.recordVolumeDone(ctx, { step: 'recordSnapshotAvailable' });
  } catch (err) {
    await recordVolumeFailure(ctx, err);
  }
}
