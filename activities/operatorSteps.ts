import type { Runtime } from '../server/runtime.js';
import { failOperation, writeKey, type OperationContext } from './operationSteps.js';

/** What a failed run records while it waits for an operator (workflows/runbook.ts holdForOperator). */
export function operatorSteps(rt: Runtime) {
  return {
    /**
     * The operation FAILED with the step's error, as soon as the step failed; the instance keeps its task
     * (the run still owns it), so nothing else can act on it until the run is reset or undoes its steps.
     * Its own key: when the hold ends, the undo steps reopen the operation (RUNNING while they run) and
     * recordFailed must then fail it again, not find its write already done.
     */
    async recordHeld(ctx: OperationContext, failure: { code: string; message: string }): Promise<void> {
      await failOperation(rt, ctx, failure, writeKey(ctx, 'held'));
    },
  };
}
