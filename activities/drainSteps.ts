import { StratusError } from '../domain/errors.js';
import { instanceStream, operationStream } from '../domain/events.js';
import { decideInstance, instanceDecider, type Instance, type InstanceActionKind, type InstanceEvent } from '../domain/instance.js';
import { idNamespaces, nameBasedUuid } from '../domain/nameBasedId.js';
import { decideOperation, operationDecider, workflowIdOf, type Operation, type OperationEvent } from '../domain/operation.js';
import { WrongExpectedVersion } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { decideAndAppend, readFolded } from './events.js';
import { readInstance } from './instanceRecords.js';
import { failOperation, metadataOf, recordOnOperation, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { readHost } from './hostInventory.js';

const now = () => new Date().toISOString();

/** One instance a host operation acts on, and what became of it. */
export interface ChildOutcome {
  instanceId: string;
  operationId?: string;
  status: 'SUCCEEDED' | 'FAILED';
  code?: string;
  message?: string;
}

/** A child's operation id follows from its parent and its instance, so a retried start finds the same one. */
export const childOperationId = (parentId: string, instanceId: string): string =>
  nameBasedUuid(idNamespaces.operation, `${parentId}\nchild\n${instanceId}`);

/**
 * The steps every host-wide operation (drain, evacuate) shares: list what is on the host, start one
 * operation per instance as a child, and record the outcome naming the instances that stayed.
 * `ctx.instanceId` is the host's id here: the operation's resource.
 */
export function hostOperationSteps(rt: Runtime) {
  return {
    /** The instances the host holds a claim for: the host stream's own account of what lives there. */
    async listInstances(ctx: OperationContext): Promise<string[]> {
      return runStep(rt, ctx, 'listInstances', async () => {
        const { state: host } = await readHost(rt, ctx.instanceId);
        if (!host) throw new StratusError('NOT_FOUND', `host ${ctx.instanceId} not found`, { id: ctx.instanceId });
        const instances = await Promise.all(Object.keys(host.claims).map((id) => readInstance(rt, id).catch(() => undefined)));
        // A claim held by an instance moving here (its host is still the source) is the mover's to finish.
        return instances.filter((i): i is Instance => i?.hostId === host.id && i.state !== 'DELETED').map((i) => i.id);
      });
    },

    /**
     * Opens the child operation on the instance, exactly as the API would (its task taken, CONFLICT when
     * it is busy or its state does not allow the action), in one transaction, and lists it on the parent.
     * A refusal is returned, not thrown: the parent reports it and goes on with the others.
     */
    async openChild(
      ctx: OperationContext,
      request: { instanceId: string; kind: InstanceActionKind; targetHostId?: string },
    ): Promise<{ operationId: string; workflowId: string } | { refused: { code: string; message: string } }> {
      const operationId = childOperationId(ctx.operationId, request.instanceId);
      const key = writeKey(ctx, 'child', request.instanceId);
      const metadata = { ...metadataOf(ctx), operationId };
      for (let round = 1; ; round++) {
        try {
          await rt.db.transaction(async (tx) => {
            const instance = (await readFolded(rt, instanceStream(request.instanceId), instanceDecider, tx)).state;
            if (!instance) throw new StratusError('NOT_FOUND', `instance ${request.instanceId} not found`);
            const at = now();
            await decideAndAppend<Operation | null, OperationEvent>(
              rt,
              operationStream(operationId),
              operationDecider,
              (op) =>
                decideOperation(
                  { type: 'request', data: { operationId, kind: request.kind, resourceId: instance.id, projectId: instance.projectId, actor: { tokenId: ctx.actor, projectId: instance.projectId, role: 'ADMIN' }, at } },
                  op,
                ),
              { key: `${key}:operation`, metadata, tx, rounds: 1 },
            );
            await decideAndAppend<Instance | null, InstanceEvent>(
              rt,
              instanceStream(instance.id),
              instanceDecider,
              (state) =>
                decideInstance(
                  { type: 'beginAction', data: { operationId, kind: request.kind, at, ...(request.targetHostId ? { targetHostId: request.targetHostId } : {}) } },
                  state,
                ),
              { key: `${key}:instance`, metadata, tx, rounds: 1 },
            );
          });
          break;
        } catch (e) {
          if (e instanceof WrongExpectedVersion && round < 10) continue;
          if (e instanceof StratusError) return { refused: { code: e.code, message: e.message } };
          throw e;
        }
      }
      await recordOnOperation(rt, ctx, `${key}:listed`, () => [{ type: 'addChild', data: { operationId, resourceId: request.instanceId, at: now() } }]);
      return { operationId, workflowId: workflowIdOf(operationId) };
    },

    /**
     * SUCCEEDED when every instance moved; otherwise FAILED, naming each instance that stayed and why,
     * with the first child's error code.
     */
    async recordHostOperation(ctx: OperationContext, request: { step: string; outcomes: ChildOutcome[] }): Promise<void> {
      const stayed = request.outcomes.filter((o) => o.status === 'FAILED');
      if (stayed.length === 0) {
        await runStep(rt, ctx, request.step, async () => undefined, { succeedsOperation: true });
        return;
      }
      const message = `${stayed.length} of ${request.outcomes.length} instances stayed on host ${ctx.instanceId}: ${stayed
        .map((o) => `${o.instanceId} (${o.code}: ${o.message})`)
        .join('; ')}`;
      await runStep(rt, ctx, request.step, async () => undefined);
      await failOperation(rt, ctx, { code: stayed[0]!.code ?? 'INTERNAL', message: message.slice(0, 4000) });
    },
  };
}
