import { flavorDecider } from '../domain/catalog.js';
import { StratusError } from '../domain/errors.js';
import { flavorStream } from '../domain/events.js';
import type { FlavorSnapshot } from '../domain/instance.js';
import type { Runtime } from '../server/runtime.js';
import { callAgent } from './agentCalls.js';
import { readFolded } from './events.js';
import { finishSucceeded, recordOnInstance, readInstance, vmNameOf } from './instanceRecords.js';
import { imageFetchOf, twinSpecOf } from './migrationSteps.js';
import { agentKey, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { claimMigrationTarget, resizeClaimOn } from './placement.js';
import { readHost } from './hostInventory.js';

const now = () => new Date().toISOString();

/** Where a resize happens: decided by `claimResize`, passed to every later step. */
export interface ResizePlan {
  sourceHostId: string;
  /** The source itself when it had room (resize in place), else another host (a cold migration). */
  targetHostId: string;
  wasRunning: boolean;
  from: FlavorSnapshot;
  to: FlavorSnapshot;
  /** Elsewhere only: the target fetches the instance's image first (MigrationPlan's `fetchImage`). */
  fetchImage?: true;
}

const resourcesOf = (f: FlavorSnapshot) => ({ vcpus: f.vcpus, memoryMb: f.memoryMb, diskGb: f.diskGb });

/** The resize runbook's steps (workflows/resizeInstance.ts). */
export function resizeSteps(rt: Runtime) {
  return {
    /**
     * Claims the new flavor: the instance's claim on its host changes in one event when the host has room
     * (Nova's resize to the same host), otherwise the scheduler claims it on another host of the same kind.
     */
    async claimResize(ctx: OperationContext, request: { flavorId: string }): Promise<ResizePlan> {
      return runStep(rt, ctx, 'claimResize', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const { state: flavor } = await readFolded(rt, flavorStream(request.flavorId), flavorDecider);
        if (!flavor) throw new StratusError('NOT_FOUND', `flavor ${request.flavorId} not found`, { id: request.flavorId });
        const sourceHostId = instance.hostId;
        if (!sourceHostId) throw new StratusError('CONFLICT', `instance ${instance.id} is on no host`);
        const to: FlavorSnapshot = { id: flavor.id, ...resourcesOf(flavor) };
        const claim = { instanceId: instance.id, operationId: ctx.operationId, resources: resourcesOf(to), metadata: metadataOf(ctx) };
        const plan = { sourceHostId, wasRunning: instance.state === 'RUNNING', from: instance.flavor, to };
        try {
          await resizeClaimOn(rt, sourceHostId, { ...claim, key: writeKey(ctx, 'claimResize', 'inPlace') });
          return { ...plan, targetHostId: sourceHostId };
        } catch (e) {
          if (!(e instanceof StratusError && e.code === 'NO_VALID_HOST')) throw e;
        }
        const { state: source } = await readHost(rt, sourceHostId);
        const targetHostId = await claimMigrationTarget(rt, {
          ...claim,
          key: writeKey(ctx, 'claimResize', 'elsewhere'),
          sourceHostId,
          hypervisor: source!.hypervisor,
        });
        return { ...plan, targetHostId, ...(await imageFetchOf(rt, instance)) };
      });
    },

    async stopForResize(ctx: OperationContext, plan: ResizePlan): Promise<void> {
      await runStep(rt, ctx, 'stopVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, plan.sourceHostId, 'stopVm', { name: vmNameOf(instance), force: false }, { idempotencyKey: agentKey(ctx, 'stopVm') });
      });
    },

    /** In place: the stopped VM takes the new flavor's size (its disk grows, never shrinks). */
    async resizeVm(ctx: OperationContext, plan: ResizePlan): Promise<void> {
      await runStep(rt, ctx, 'resizeVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, plan.sourceHostId, 'resizeVm', { name: vmNameOf(instance), ...resourcesOf(plan.to) }, { idempotencyKey: agentKey(ctx, 'resizeVm') });
      });
    },

    /** Elsewhere: the VM is defined on the target with the new flavor (a cold migration). */
    async defineResized(ctx: OperationContext, plan: ResizePlan): Promise<void> {
      await runStep(rt, ctx, 'defineOnTarget', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const spec = { ...(await twinSpecOf(rt, instance, plan.targetHostId)), ...resourcesOf(plan.to) };
        await callAgent(rt, plan.targetHostId, 'createVm', { spec }, { idempotencyKey: agentKey(ctx, 'defineOnTarget') });
      });
    },

    /** InstanceResized with the new flavor and, when it moved, its new host. */
    async recordResized(ctx: OperationContext, plan: ResizePlan): Promise<void> {
      await runStep(rt, ctx, 'recordResized', async () => {
        await recordOnInstance(rt, ctx, writeKey(ctx, 'recordResized'), () => [
          { type: 'recordTransition', data: { kind: 'RESIZE', flavor: plan.to, hostId: plan.targetHostId, operationId: ctx.operationId, at: now() } },
        ]);
      });
    },

    /** Back to its former state: a resized instance that was running is started on its (new) host. */
    async startResized(ctx: OperationContext, plan: ResizePlan): Promise<void> {
      await runStep(rt, ctx, 'startVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, plan.targetHostId, 'startVm', { name: vmNameOf(instance) }, { idempotencyKey: agentKey(ctx, 'startVm') });
      });
    },

    finishResize: (ctx: OperationContext): Promise<void> => finishSucceeded(rt, ctx, 'finishResize'),

    /** Undo in place: the claim goes back to the old flavor (keeping a disk that already grew). */
    async restoreClaim(ctx: OperationContext, plan: ResizePlan): Promise<void> {
      await runStep(rt, ctx, 'restoreClaim', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const vm = await callAgent(rt, plan.sourceHostId, 'getVm', { name: vmNameOf(instance) });
        const resources = { ...resourcesOf(plan.from), diskGb: Math.max(plan.from.diskGb, vm.diskGb) };
        await resizeClaimOn(rt, plan.sourceHostId, { instanceId: instance.id, operationId: ctx.operationId, resources, key: writeKey(ctx, 'restoreClaim'), metadata: metadataOf(ctx) });
      });
    },

    /** Undo: a resize that stopped the instance starts it again where it was. */
    async restartOnSource(ctx: OperationContext, plan: ResizePlan): Promise<void> {
      await runStep(rt, ctx, 'restartOnSource', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const name = vmNameOf(instance);
        const vm = await callAgent(rt, plan.sourceHostId, 'getVm', { name });
        if (vm.state === 'running') return;
        await callAgent(rt, plan.sourceHostId, 'startVm', { name }, { idempotencyKey: agentKey(ctx, 'restartOnSource') });
      });
    },
  };
}
