import { failureOf, holdForOperator, operationContext, recordFailure, steps, undoSteps, eventSteps, type OperationInput } from './runbook.js';

/**
 * Instance snapshot → image (Nova's createImage): the host writes a standalone qcow2 of the instance's
 * disk (live, point in time, when it runs), the controller pulls it over the host's SSH connection into
 * its image store and checks it, the image the command made turns ACTIVE, the host's copy goes, and the
 * instance is recorded snapshotted (its state unchanged). A failure at any step undoes them all: the
 * host's copy goes, and the image is left ERROR with the reason (or deleted, if it had turned ACTIVE).
 */
export async function snapshotInstance(input: OperationInput): Promise<void> {
  const ctx = operationContext(input);
  const imageId = input.imageId!;
  try {
    await steps.snapshotVm(ctx, { imageId });
    await steps.uploadSnapshot(ctx, { imageId });
    await steps.removeHostSnapshot(ctx, { imageId });
    await eventSteps().recordTransition(ctx, { step: 'recordSnapshot', result: { kind: 'SNAPSHOT', imageId } });
  } catch (err) {
    await holdForOperator(ctx, input, err);
    await undoSteps.discardSnapshot(ctx, { imageId, reason: failureOf(err).message });
    await recordFailure(ctx, err, { instanceError: false });
  }
}
