import type { TransitionResult } from '../domain/instance.js';
import type { Runtime } from '../server/runtime.js';
import { callAgent } from './agentCalls.js';
import { finishSucceeded, recordOnInstance, readInstance, vmNameOf } from './instanceRecords.js';
import { agentKey, failOperation, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { releaseHostClaims } from './placement.js';

const now = () => new Date().toISOString();

/** The power actions an instance's VM takes on its host, by the agent method that does each. */
export type VmAction = 'startVm' | 'stopVm' | 'rebootVm' | 'pauseVm' | 'unpauseVm' | 'suspendVm' | 'resumeVm';

/** Steps shared by the power actions, delete, and every runbook's undo. */
export function actionSteps(rt: Runtime) {
  return {
    /** Asks the instance's host to act on its VM; the step is named after the agent method. */
    async vmAction(ctx: OperationContext, request: { action: VmAction; hard?: boolean }): Promise<void> {
      await runStep(rt, ctx, request.action, async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const hostId = instance.hostId!;
        const name = vmNameOf(instance);
        const key = agentKey(ctx, request.action);
        switch (request.action) {
          case 'stopVm':
            return void (await callAgent(rt, hostId, 'stopVm', { name, force: false }, { idempotencyKey: key }));
          case 'rebootVm':
            return request.hard ? hardReboot(rt, hostId, name, key) : void (await callAgent(rt, hostId, 'rebootVm', { name, hard: false }, { idempotencyKey: key }));
          default:
            return void (await callAgent(rt, hostId, request.action, { name }, { idempotencyKey: key }));
        }
      });
    },

    /** Records the action's result on the instance, releases its task, and succeeds the operation. */
    recordTransition: (ctx: OperationContext, request: { step: string; result: TransitionResult }): Promise<void> =>
      finishSucceeded(rt, ctx, request.step, () => [{ type: 'recordTransition', data: { ...request.result, operationId: ctx.operationId, at: now() } }]),

    /** Removes the VM and its disk from its host; a VM that is not there (never made, already gone) is fine. */
    async destroyVm(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'destroyVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        if (!instance.hostId) return;
        await callAgent(rt, instance.hostId, 'destroyVm', { name: vmNameOf(instance) }, { idempotencyKey: agentKey(ctx, 'destroyVm') });
      });
    },

    /** Gives the instance's host capacity back (invariant 8: a failed or deleted instance holds nothing). */
    async releaseClaim(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'releaseClaim', async () => {
        await releaseHostClaims(rt, { instanceId: ctx.instanceId, key: writeKey(ctx, 'releaseClaim'), metadata: metadataOf(ctx) });
      });
    },

    /**
     * The operation failed for good: a failed boot leaves the instance in ERROR with the reason (Nova's
     * vm_state=error); a failed power action leaves its state as it was. Either way the task is released
     * and the operation records the error.
     */
    async recordFailed(ctx: OperationContext, failure: { code: string; message: string; instanceError: boolean }): Promise<void> {
      const { code, message } = failure;
      await recordOnInstance(rt, ctx, writeKey(ctx, 'recordFailed'), () => [
        ...(failure.instanceError ? [{ type: 'recordFailure' as const, data: { operationId: ctx.operationId, code, message, at: now() } }] : []),
        { type: 'finishAction', data: { operationId: ctx.operationId, outcome: 'FAILED', at: now() } },
      ]);
      await failOperation(rt, ctx, { code, message });
    },
  };
}

/**
 * Power-cycles the VM from whatever state it is in (Nova's hard reboot is the way back from PAUSED,
 * STOPPED and ERROR). Each sub-call has its own key, so a retry resumes where the last attempt stopped.
 */
async function hardReboot(rt: Runtime, hostId: string, name: string, key: string): Promise<void> {
  const vm = await callAgent(rt, hostId, 'getVm', { name });
  if (vm.state === 'running') {
    await callAgent(rt, hostId, 'rebootVm', { name, hard: true }, { idempotencyKey: key });
    return;
  }
  if (vm.state === 'paused' || vm.state === 'suspended') await callAgent(rt, hostId, 'stopVm', { name, force: true }, { idempotencyKey: `${key}:stop` });
  await callAgent(rt, hostId, 'startVm', { name }, { idempotencyKey: `${key}:start` });
}
