import { volumeStream } from '../domain/events.js';
import { volumeDecider } from '../domain/volume.js';
import { AgentError } from '../hostagent/driver.js';
import type { Runtime } from '../server/runtime.js';
import { callAgent } from './agentCalls.js';
import { decideAndAppend } from './events.js';
import { recordOnInstance, readInstance, vmNameOf } from './instanceRecords.js';
import { agentKey, failOperation, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { poolHostId, readVolume, recordOnVolume, volumesEverAttachedTo, type VolumeContext } from './volumeRecords.js';

const now = () => new Date().toISOString();

/** The volume runbooks' steps (workflows/*Volume.ts), each one activity that records itself. */
export function volumeSteps(rt: Runtime) {
  const instanceHost = async (ctx: VolumeContext) => {
    const instance = await readInstance(rt, ctx.instanceId);
    return { hostId: instance.hostId!, name: vmNameOf(instance) };
  };

  return {
    /** A qcow2 file in the storage pool, blank or a copy of the snapshot it was created from. */
    async createVolumeFile(ctx: VolumeContext): Promise<void> {
      await runStep(rt, ctx, 'createVolumeFile', async () => {
        const volume = await readVolume(rt, ctx.volumeId);
        await callAgent(
          rt,
          await poolHostId(rt),
          'createVolume',
          { volumeId: volume.id, sizeGb: volume.sizeGb, ...(volume.sourceSnapshotId ? { fromSnapshotId: volume.sourceSnapshotId } : {}) },
          { idempotencyKey: agentKey(ctx, 'createVolumeFile') },
        );
      });
    },

    /** Removes the volume's file and its snapshots' files from the pool. */
    async deleteVolumeFile(ctx: VolumeContext): Promise<void> {
      await runStep(rt, ctx, 'deleteVolumeFile', async () => {
        const volume = await readVolume(rt, ctx.volumeId);
        await callAgent(
          rt,
          await poolHostId(rt),
          'deleteVolume',
          { volumeId: volume.id, snapshotIds: volume.snapshots.map((s) => s.id) },
          { idempotencyKey: agentKey(ctx, 'deleteVolumeFile') },
        );
      });
    },

    async snapshotVolumeFile(ctx: VolumeContext): Promise<void> {
      await runStep(rt, ctx, 'snapshotVolumeFile', async () => {
        const volume = await readVolume(rt, ctx.volumeId);
        const snapshot = volume.snapshots.findLast((s) => s.state === 'CREATING');
        if (!snapshot) return;
        await callAgent(rt, await poolHostId(rt), 'snapshotVolume', { volumeId: volume.id, snapshotId: snapshot.id }, {
          idempotencyKey: agentKey(ctx, 'snapshotVolumeFile'),
        });
      });
    },

    /** Hot-plugs the volume into a running VM, or adds it to a stopped or paused one's next start (cold). */
    async attachToVm(ctx: VolumeContext): Promise<{ device: string }> {
      return runStep(rt, ctx, 'attachToVm', async () => {
        const volume = await readVolume(rt, ctx.volumeId);
        const { hostId, name } = await instanceHost(ctx);
        const vm = await callAgent(rt, hostId, 'attachVolume', { name, volumeId: volume.id, sizeGb: volume.sizeGb }, {
          idempotencyKey: agentKey(ctx, 'attachToVm'),
        });
        return { device: vm.volumes.find((v) => v.volumeId === volume.id)?.device ?? 'unknown' };
      });
    },

    /** Unplugs the volume (the attach's undo too); a volume the VM does not hold is already detached. */
    async detachFromVm(ctx: VolumeContext): Promise<void> {
      await runStep(rt, ctx, 'detachFromVm', async () => {
        const { hostId, name } = await instanceHost(ctx);
        try {
          await callAgent(rt, hostId, 'detachVolume', { name, volumeId: ctx.volumeId }, { idempotencyKey: agentKey(ctx, 'detachFromVm') });
        } catch (e) {
          if (!(e instanceof AgentError && e.code === 'NOT_FOUND')) throw e;
        }
      });
    },

    /**
     * Records the outcome on the volume (and, for an attach or detach, releases the instance), then
     * succeeds the operation. The volume's record comes first: the instance's release is what lets the
     * next action on it begin, and that one must see the volume as it now is.
     */
    async recordVolumeDone(ctx: VolumeContext, request: { step: string; device?: string }): Promise<void> {
      await runStep(
        rt,
        ctx,
        request.step,
        async () => {
          const { operationId } = ctx;
          await recordOnVolume(rt, ctx, writeKey(ctx, request.step, 'volume'), (v) => {
            const at = now();
            const finish = { type: 'finishAction' as const, data: { operationId, outcome: 'SUCCEEDED' as const, at } };
            switch (v.task) {
              case 'CREATE_VOLUME': return [{ type: 'recordCreated', data: { operationId, at } }, finish];
              case 'DELETE_VOLUME': return [{ type: 'recordDeleted', data: { operationId, at } }, finish];
              case 'ATTACH_VOLUME':
                return [{ type: 'recordAttached', data: { operationId, instanceId: ctx.instanceId, device: request.device ?? 'unknown', at } }, finish];
              case 'DETACH_VOLUME': return [{ type: 'recordDetached', data: { operationId, instanceId: ctx.instanceId, at } }, finish];
              case 'SNAPSHOT_VOLUME': {
                const snapshot = v.snapshots.findLast((s) => s.state === 'CREATING');
                return [...(snapshot ? [{ type: 'recordSnapshotted' as const, data: { operationId, snapshotId: snapshot.id, at } }] : []), finish];
              }
              default: return [];
            }
          });
          if (ctx.instanceId) await releaseInstance(rt, ctx, request.step, 'SUCCEEDED');
        },
        { succeedsOperation: true },
      );
    },

    /** The operation failed for good: a failed create leaves the volume ERROR; every task is released. */
    async recordVolumeFailed(ctx: VolumeContext, failure: { code: string; message: string }): Promise<void> {
      const { operationId } = ctx;
      await recordOnVolume(rt, ctx, writeKey(ctx, 'recordVolumeFailed'), () => [
        { type: 'recordFailure', data: { operationId, ...failure, at: now() } },
        { type: 'finishAction', data: { operationId, outcome: 'FAILED', at: now() } },
      ]);
      if (ctx.instanceId) await releaseInstance(rt, ctx, 'recordVolumeFailed', 'FAILED');
      await failOperation(rt, ctx, failure);
    },

    /**
     * Deleting an instance detaches its volumes: they survive, AVAILABLE. The delete holds the instance's
     * task, so no attach or detach of it runs meanwhile and the streams say exactly what is attached.
     */
    async releaseVolumes(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'releaseVolumes', async () => {
        for (const volumeId of await volumesEverAttachedTo(rt, ctx.instanceId)) {
          await decideAndAppend(
            rt,
            volumeStream(volumeId),
            volumeDecider,
            (v) => volumeDecider.decide({ type: 'releaseFromDeletedInstance', data: { operationId: ctx.operationId, instanceId: ctx.instanceId, at: now() } }, v),
            { key: writeKey(ctx, 'releaseVolumes', volumeId), metadata: metadataOf(ctx), rounds: 10 },
          );
        }
      });
    },
  };
}

async function releaseInstance(rt: Runtime, ctx: VolumeContext, step: string, outcome: 'SUCCEEDED' | 'FAILED'): Promise<void> {
  // The attachment is the volume's record; the instance only held the task, so releasing it is all.
  await recordOnInstance(rt, ctx, writeKey(ctx, step, 'instance'), () => [
    { type: 'finishAction', data: { operationId: ctx.operationId, outcome, at: now() } },
  ]);
}
