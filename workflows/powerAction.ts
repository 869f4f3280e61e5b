import type { VmAction } from '../activities/index.js';
import type { TransitionResult } from '../domain/instance.js';
import { eventSteps, holdForOperator, operationContext, recordFailure, steps, type OperationInput } from './runbook.js';

/**
 * The runbook every power action shares: ask the host to act on the VM (step named after the agent
 * method), then record the instance's new state (step `record<State>`). A failure leaves the instance's
 * state as it was, releases its task and fails the operation.
 */
export async function powerAction(input: OperationInput, action: { vm: VmAction; record: string; result: TransitionResult }): Promise<void> {
  const ctx = operationContext(input);
  const record = eventSteps();
  try {
    await steps.vmAction(ctx, { action: action.vm, ...(input.hard !== undefined ? { hard: input.hard } : {}) });
    await record.recordTransition(ctx, { step: action.record, result: action.result });
  } catch (err) {
    await holdForOperator(ctx, input, err);
    await recordFailure(ctx, err, { instanceError: false });
  }
}
