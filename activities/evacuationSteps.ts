import { StratusError } from '../domain/errors.js';
import type { Runtime } from '../server/runtime.js';
import { callAgent } from './agentCalls.js';
import { finishSucceeded, recordOnInstance, readInstance, vmNameOf } from './instanceRecords.js';
import { imageFetchOf, twinSpecOf, unplugPortsFrom, type MigrationPlan } from './migrationSteps.js';
import { agentKey, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { claimMigrationTarget, releaseClaimOn } from './placement.js';
import { readHost } from './hostInventory.js';

const now = () => new Date().toISOString();

/** An evacuation is a cold migration whose source cannot be asked anything. */
export type EvacuationPlan = MigrationPlan & { wasRunning: boolean };

/** The evacuation runbook's steps (workflows/evacuateInstance.ts): Nova's evacuate, rebuilt from the image. */
export function evacuationSteps(rt: Runtime) {
  const steps = {
    /** Only an instance whose host is DOWN is evacuated (Nova refuses while the source is up): else migrate. */
    async claimEvacuationTarget(ctx: OperationContext): Promise<EvacuationPlan> {
      return runStep(rt, ctx, 'claimTarget', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const sourceHostId = instance.hostId;
        if (!sourceHostId) throw new StratusError('CONFLICT', `instance ${instance.id} is on no host`);
        const { state: source } = await readHost(rt, sourceHostId);
        if (source?.state !== 'DOWN') {
          throw new StratusError('CONFLICT', `host ${source?.name ?? sourceHostId} is ${source?.state ?? 'gone'}, not DOWN: migrate the instance instead`);
        }
        const { vcpus, memoryMb, diskGb } = instance.flavor;
        const targetHostId = await claimMigrationTarget(rt, {
          instanceId: instance.id,
          operationId: ctx.operationId,
          resources: { vcpus, memoryMb, diskGb },
          key: writeKey(ctx, 'claimTarget', 'claim'),
          metadata: metadataOf(ctx),
          sourceHostId,
          hypervisor: source.hypervisor,
        });
        return { sourceHostId, targetHostId, live: false, wasRunning: instance.state === 'RUNNING', ...(await imageFetchOf(rt, instance)) };
      });
    },

    /**
     * The VM defined anew on the target from the instance's image (the local disk died with its host), not
     * started: a fresh overlay on the target's cached copy, which `fetchImage` put there.
     */
    async defineRebuild(ctx: OperationContext, plan: EvacuationPlan): Promise<void> {
      await runStep(rt, ctx, 'createVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, plan.targetHostId, 'createVm', { spec: await twinSpecOf(rt, instance, plan.targetHostId) }, { idempotencyKey: agentKey(ctx, 'createVm') });
      });
    },

    /** Started on the target once the instance lives there (only when it was running). */
    async startRebuilt(ctx: OperationContext, plan: EvacuationPlan): Promise<void> {
      await runStep(rt, ctx, 'startVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, plan.targetHostId, 'startVm', { name: vmNameOf(instance) }, { idempotencyKey: agentKey(ctx, 'startVm') });
      });
    },

    /**
     * The rebuild of runs begun before EVACUATION_MOVES_BEFORE_START, which started the VM before recording
     * the move: it now moves the instance between the two as the current runbook does, so such a run cannot
     * start a second VM for an instance whose host answered meanwhile (the move is refused and the
     * workflow's dropRebuild undoes it); the workflow's later recordEvacuated is then a no-op.
     */
    async rebuildOnTarget(ctx: OperationContext, plan: EvacuationPlan): Promise<void> {
      await steps.defineRebuild(ctx, plan);
      await steps.recordEvacuated(ctx, plan);
      if (plan.wasRunning) await steps.startRebuilt(ctx, plan);
    },

    /**
     * Undo: the half-made VM on the target goes and so does its claim; the instance stays with its host.
     * An instance that lives on the target already keeps what it has there: that VM is the instance now.
     */
    async dropRebuild(ctx: OperationContext, plan: EvacuationPlan): Promise<void> {
      await runStep(rt, ctx, 'dropRebuild', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        if (instance.hostId === plan.targetHostId) return;
        await callAgent(rt, plan.targetHostId, 'destroyVm', { name: vmNameOf(instance) }, { idempotencyKey: agentKey(ctx, 'dropRebuild') });
        await unplugPortsFrom(rt, instance, plan.targetHostId, agentKey(ctx, 'dropRebuild:ports'));
        await releaseClaimOn(rt, plan.targetHostId, { instanceId: ctx.instanceId, key: writeKey(ctx, 'dropRebuild'), metadata: metadataOf(ctx) });
      });
    },

    /**
     * The move: the instance lives on the target from here on. Decided on the instance's stream, where the
     * health check clears its host's note when the host answers again: refused (CONFLICT) after that, and
     * once it has landed the returning host's fencing destroys the VM left there (activities/hostHealth.ts).
     */
    async recordEvacuated(ctx: OperationContext, plan: EvacuationPlan): Promise<void> {
      await runStep(rt, ctx, 'recordEvacuated', async () => {
        await recordOnInstance(rt, ctx, writeKey(ctx, 'recordEvacuated'), () => [
          { type: 'recordTransition', data: { kind: 'EVACUATE', hostId: plan.targetHostId, operationId: ctx.operationId, at: now() } },
        ]);
      });
    },

    finishEvacuation: (ctx: OperationContext): Promise<void> => finishSucceeded(rt, ctx, 'finishEvacuation'),
  };
  return steps;
}
