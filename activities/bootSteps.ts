import { StratusError } from '../domain/errors.js';
import type { Runtime } from '../server/runtime.js';
import { callAgent } from './agentCalls.js';
import { bootSourceOf } from './imageFetch.js';
import { finishSucceeded, recordOnInstance, readInstance, vmNameOf } from './instanceRecords.js';
import { agentKey, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { claimHostCapacity } from './placement.js';

const now = () => new Date().toISOString();

/** The boot runbook's steps (workflows/bootInstance.ts), each one activity that records itself. */
export function bootSteps(rt: Runtime) {
  const placedHost = (instance: { hostId: string | null; id: string }) => {
    if (!instance.hostId) throw new StratusError('INTERNAL', `instance ${instance.id} has no host yet`);
    return instance.hostId;
  };

  return {
    /** Filter and weigh the hosts, claim capacity on the best one, record where the instance goes. */
    async schedule(ctx: OperationContext): Promise<{ hostId: string }> {
      return runStep(rt, ctx, 'schedule', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const { vcpus, memoryMb, diskGb } = instance.flavor;
        const hostId = await claimHostCapacity(rt, {
          instanceId: instance.id,
          operationId: ctx.operationId,
          resources: { vcpus, memoryMb, diskGb },
          key: writeKey(ctx, 'schedule', 'claim'),
          metadata: metadataOf(ctx),
        });
        await recordOnInstance(rt, ctx, writeKey(ctx, 'schedule', 'scheduled'), () => [
          { type: 'recordScheduled', data: { operationId: ctx.operationId, hostId, at: now() } },
        ]);
        return { hostId };
      });
    },

    /** Define the VM on the chosen host (the sim and qemu drivers make its disk with it). */
    async createVm(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'createVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const { vcpus, memoryMb, diskGb } = instance.flavor;
        const boot = await bootSourceOf(rt, placedHost(instance), instance.imageId);
        await callAgent(
          rt,
          placedHost(instance),
          'createVm',
          {
            spec: {
              name: vmNameOf(instance),
              vcpus,
              memoryMb,
              diskGb,
              ...(boot ? { boot } : {}),
              labels: { instanceId: instance.id, projectId: instance.projectId, imageId: instance.imageId },
            },
          },
          { idempotencyKey: agentKey(ctx, 'createVm') },
        );
      });
    },

    async startVm(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'startVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, placedHost(instance), 'startVm', { name: vmNameOf(instance) }, { idempotencyKey: agentKey(ctx, 'startVm') });
      });
    },

    /** RUNNING, the task released, the operation SUCCEEDED: the instance is the user's. */
    recordRunning: (ctx: OperationContext): Promise<void> =>
      finishSucceeded(rt, ctx, 'recordRunning', (instance) => [
        { type: 'recordLaunched', data: { operationId: ctx.operationId, hostId: placedHost(instance), launchedAt: now() } },
      ]),
  };
}
