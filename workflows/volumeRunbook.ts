import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { VolumeContext } from '../activities/index.js';
import { failureOf, undoSteps } from './runbook.js';

/** What a volume command passes to its workflow; the rest is read from the volume's stream. */
export interface VolumeOperationInput {
  operationId: string;
  volumeId: string;
  /** ATTACH_VOLUME and DETACH_VOLUME: the instance, whose task the operation holds as well. */
  instanceId?: string;
  actor: string;
  attempt: number;
}

export function volumeContext(input: VolumeOperationInput): VolumeContext {
  const { workflowId, runId } = workflowInfo();
  return {
    operationId: input.operationId,
    volumeId: input.volumeId,
    instanceId: input.instanceId ?? '',
    actor: input.actor,
    attempt: input.attempt,
    workflowId,
    runId,
  };
}

/** Records the failure on the volume, its instance and the operation, and fails the workflow as well. */
export async function recordVolumeFailure(ctx: VolumeContext, err: unknown): Promise<never> {
  const failure = failureOf(err);
  await undoSteps.recordVolumeFailed(ctx, failure);
  throw ApplicationFailure.create({ message: failure.message, type: failure.code, nonRetryable: true });
}
