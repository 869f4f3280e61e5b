import { StratusError } from '../domain/errors.js';
import type { Instance } from '../domain/instance.js';
import { AgentError, type MigrationTarget, type VmSpecInput } from '../hostagent/driver.js';
import type { Runtime } from '../server/runtime.js';
import { activityContext, callAgent } from './agentCalls.js';
import { bootSourceOf, hasImageToFetch } from './imageFetch.js';
import { finishSucceeded, recordOnInstance, readInstance, vmNameOf } from './instanceRecords.js';
import { agentKey, metadataOf, runStep, stepProgress, writeKey, type OperationContext } from './operationSteps.js';
import { claimMigrationTarget, releaseClaimOn } from './placement.js';
import { readHost } from './hostInventory.js';
import { attachedVolumesOf, plugVolumesOnTarget } from './movingVolumes.js';
import { forgetInstancePorts, plugInstancePorts, unplugInstancePorts } from './ports.js';
import { componentLog } from '../server/log.js';

const log = componentLog('migration');

/** Attempts of abandonTarget (200 ms doubling: about 6 s) before a target that does not answer keeps its twin. */
const ABANDON_ATTEMPTS = 6;

const now = () => new Date().toISOString();

/** Where a migration goes and how: decided once by `claimTarget`, then passed to every later step. */
export interface MigrationPlan {
  sourceHostId: string;
  targetHostId: string;
  /** RUNNING moves live (QEMU's migrate); STOPPED moves cold (the VM is defined on the target). */
  live: boolean;
  /**
   * Set (true) when the instance's image has bytes (an uploaded image): the target fetches it before
   * its twin is made there. Absent for a registered image, and in plans recorded before moves fetched.
   */
  fetchImage?: true;
}

/** The plan's `fetchImage`, present only when there is something to fetch, so other plans stay as they were. */
export async function imageFetchOf(rt: Runtime, instance: Instance): Promise<{ fetchImage?: true }> {
  return (await hasImageToFetch(rt, instance.imageId)) ? { fetchImage: true } : {};
}

/** The VM as the agent defines it, the same on every host, so the target's VM is the source's twin. */
export const vmSpecOf = (instance: Instance): VmSpecInput => ({
  name: vmNameOf(instance),
  vcpus: instance.flavor.vcpus,
  memoryMb: instance.flavor.memoryMb,
  diskGb: instance.flavor.diskGb,
  labels: { instanceId: instance.id, projectId: instance.projectId, imageId: instance.imageId },
});

/**
 * The VM as a target host makes it (a migration's twin, a resize's definition elsewhere, an evacuation's
 * rebuild): the source's, with the instance's attached volumes on the devices they had there, booting
 * from the target's own cached copy of the instance's image (fetched there first), as a boot does, so
 * its disk is an overlay on the same base the source's is.
 */
export async function twinSpecOf(rt: Runtime, instance: Instance, targetHostId: string): Promise<VmSpecInput> {
  const boot = await bootSourceOf(rt, targetHostId, instance.imageId);
  return { ...vmSpecOf(instance), ...(boot ? { boot } : {}), volumes: await attachedVolumesOf(rt, instance.id) };
}

/**
 * What must be plugged on the target before the VM arrives (attached volumes on the shared pool, NIC taps
 * on the tenant bridges). The step runs in every migration, resize to another host and evacuation.
 */
export async function plugAttachmentsOnTarget(rt: Runtime, instance: Instance, targetHostId: string, key = `plugAttachments:${instance.id}`): Promise<void> {
  await plugVolumesOnTarget(rt, instance, targetHostId);
  await plugPortsOnTarget(rt, instance, targetHostId, `${key}:ports`);
}

/**
 * The instance's NICs on the target, the same ports (id, MAC, address, rules, floating addresses) as on
 * the source, so the guest keeps its address; `unplugPortsFrom` takes them off the host the instance
 * left (or off the target of a move that was abandoned).
 */
export async function plugPortsOnTarget(rt: Runtime, instance: Instance, targetHostId: string, key: string): Promise<void> {
  await plugInstancePorts(rt, instance, targetHostId, key);
}

/**
 * A host that is DOWN (an evacuation's source) cannot be asked: its ports go when it is cleaned up, but
 * the controller forgets them now, so membership news stops going there for them.
 */
export async function unplugPortsFrom(rt: Runtime, instance: Instance, hostId: string, key: string): Promise<void> {
  if ((await readHost(rt, hostId)).state?.state === 'DOWN') return forgetInstancePorts(rt, instance, hostId);
  await unplugInstancePorts(rt, instance, hostId, key);
}

/** The migration runbook's steps (workflows/migrateInstance.ts). */
export function migrationSteps(rt: Runtime) {
  const hostOf = async (hostId: string) => {
    const { state } = await readHost(rt, hostId);
    if (!state) throw new StratusError('NOT_FOUND', `host ${hostId} not found`, { hostId });
    return state;
  };

  return {
    /** Pick (or check) the target and claim the instance's flavor there before anything moves. */
    async claimTarget(ctx: OperationContext, request: { targetHostId?: string }): Promise<MigrationPlan> {
      return runStep(rt, ctx, 'claimTarget', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const sourceHostId = instance.hostId;
        if (!sourceHostId) throw new StratusError('CONFLICT', `instance ${instance.id} is on no host`);
        if (request.targetHostId === sourceHostId) {
          throw new StratusError('BAD_USER_INPUT', `instance ${instance.id} is already on host ${sourceHostId}`, { targetHostId: sourceHostId });
        }
        const source = await hostOf(sourceHostId);
        if (request.targetHostId) {
          const target = await hostOf(request.targetHostId);
          if (target.hypervisor !== source.hypervisor) {
            throw new StratusError('NO_VALID_HOST', `host ${target.name} runs ${target.hypervisor}, the instance runs on ${source.hypervisor}`, {
              reason: 'hypervisor-mismatch',
              hostId: target.id,
            });
          }
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
          targetHostId: request.targetHostId,
        });
        return { sourceHostId, targetHostId, live: instance.state === 'RUNNING', ...(await imageFetchOf(rt, instance)) };
      });
    },

    async plugAttachments(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await runStep(rt, ctx, 'plugAttachments', async () => {
        await plugAttachmentsOnTarget(rt, await readInstance(rt, ctx.instanceId), plan.targetHostId, agentKey(ctx, 'plugAttachments'));
      });
    },

    /** The target starts the VM's twin, paused, waiting for the source's state; returns where to send it. */
    async migrateReceive(ctx: OperationContext, plan: MigrationPlan): Promise<MigrationTarget> {
      return runStep(rt, ctx, 'migrateReceive', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        return callAgent(rt, plan.targetHostId, 'migrateReceive', { spec: await twinSpecOf(rt, instance, plan.targetHostId) }, { idempotencyKey: agentKey(ctx, 'migrateReceive') });
      });
    },

    /** The source sends the VM (memory and disk); the transfer's progress is kept on the step. */
    async migrateSend(ctx: OperationContext, plan: MigrationPlan, endpoint: MigrationTarget): Promise<{ downtimeMs: number; totalMs: number }> {
      return runStep(rt, ctx, 'migrateSend', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const progress = stepProgress(rt, ctx, 'migrateSend');
        try {
          const result = await callAgent(
            rt,
            plan.sourceHostId,
            'migrateSend',
            { name: vmNameOf(instance), target: endpoint },
            { idempotencyKey: agentKey(ctx, 'migrateSend'), timeoutMs: 30 * 60_000, onProgress: (p) => progress.report(p) },
          );
          progress.final({ percent: 100, message: `transferred ${result.transferredBytes} bytes, downtime ${Math.round(result.downtimeMs)} ms` });
          return { downtimeMs: result.downtimeMs, totalMs: result.totalMs };
        } finally {
          await progress.settled();
        }
      });
    },

    /** Cold: the stopped VM is defined on the target, then removed from the source. */
    async defineOnTarget(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await runStep(rt, ctx, 'defineOnTarget', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, plan.targetHostId, 'createVm', { spec: await twinSpecOf(rt, instance, plan.targetHostId) }, { idempotencyKey: agentKey(ctx, 'defineOnTarget') });
      });
    },

    /** Cold: the stopped VM's disk goes from the source to its twin on the target (acknowledged whole or not at all). */
    async copyDisk(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await runStep(rt, ctx, 'copyDisk', async () => {
        const name = vmNameOf(await readInstance(rt, ctx.instanceId));
        const endpoint = await callAgent(rt, plan.targetHostId, 'receiveDisk', { name }, { idempotencyKey: agentKey(ctx, 'receiveDisk') });
        await callAgent(rt, plan.sourceHostId, 'sendDisk', { name, target: endpoint }, { idempotencyKey: agentKey(ctx, 'sendDisk'), timeoutMs: 60 * 60_000 });
      });
    },

    async removeFromSource(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await runStep(rt, ctx, 'removeFromSource', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        await callAgent(rt, plan.sourceHostId, 'destroyVm', { name: vmNameOf(instance) }, { idempotencyKey: agentKey(ctx, 'removeFromSource') });
      });
    },

    /** The VM is on the target now: the instance says so (InstanceMigrated) before anything else is released. */
    async switchHost(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await runStep(rt, ctx, 'switchHost', async () => {
        await recordOnInstance(rt, ctx, writeKey(ctx, 'switchHost'), () => [
          { type: 'recordTransition', data: { kind: 'MIGRATE', hostId: plan.targetHostId, operationId: ctx.operationId, at: now() } },
        ]);
      });
    },

    async releaseSourceClaim(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await runStep(rt, ctx, 'releaseSourceClaim', async () => {
        // The instance left the source: its ports there go too (a DOWN source is skipped).
        await unplugPortsFrom(rt, await readInstance(rt, ctx.instanceId), plan.sourceHostId, agentKey(ctx, 'releaseSourceClaim:ports'));
        await releaseClaimOn(rt, plan.sourceHostId, { instanceId: ctx.instanceId, key: writeKey(ctx, 'releaseSourceClaim'), metadata: metadataOf(ctx) });
      });
    },

    /** The task is released and the operation SUCCEEDED. */
    recordMigrated: (ctx: OperationContext): Promise<void> => finishSucceeded(rt, ctx, 'recordMigrated'),

    /**
     * Undo of a migration that did not complete: the target's twin is destroyed and its claim released,
     * so the instance is where it was and holds only the source. If the source no longer has the VM (the
     * transfer completed but its report was lost), the twin is the instance now: it is never destroyed,
     * and `arrived` tells the workflow to finish the migration instead.
     *
     * The claim goes back even when the twin cannot be destroyed (the target unreachable, or refusing):
     * room held on a host for an instance that stays on its source would never be released otherwise. The
     * twin left there is a VM whose instance lives on another host, which that host's fencing destroys
     * when it answers again after the health check turned it DOWN (activities/hostHealth.ts).
     */
    async abandonTarget(ctx: OperationContext, plan: MigrationPlan): Promise<{ arrived: boolean }> {
      return runStep(rt, ctx, 'abandonTarget', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const name = vmNameOf(instance);
        const onSource = await callAgent(rt, plan.sourceHostId, 'getVm', { name }).then(
          () => true,
          (e: unknown) => {
            if (e instanceof AgentError && e.code === 'NOT_FOUND') return false;
            throw e;
          },
        );
        if (!onSource) return { arrived: true };
        const destroyed = await callAgent(rt, plan.targetHostId, 'destroyVm', { name }, { idempotencyKey: agentKey(ctx, 'abandonTarget') }).then(
          () => true,
          (e: unknown) => {
            // A target that is away for a moment is asked again (the activity's retries, a few seconds in
            // all); one that stays away, or refuses, is left to its fencing.
            const attempt = activityContext()?.info.attempt ?? ABANDON_ATTEMPTS;
            if (e instanceof AgentError && e.retryable && attempt < ABANDON_ATTEMPTS) throw e;
            log.warn({ err: e, hostId: plan.targetHostId, vm: name, attempt }, 'the twin of an undone migration is left to the target host’s fencing');
            return false;
          },
        );
        // A target that cannot be asked keeps its ports until it is fenced; the controller forgets them now.
        if (destroyed) await unplugPortsFrom(rt, instance, plan.targetHostId, agentKey(ctx, 'abandonTarget:ports'));
        else await forgetInstancePorts(rt, instance, plan.targetHostId);
        await releaseClaimOn(rt, plan.targetHostId, { instanceId: ctx.instanceId, key: writeKey(ctx, 'abandonTarget'), metadata: metadataOf(ctx) });
        return { arrived: false };
      });
    },
  };
}
