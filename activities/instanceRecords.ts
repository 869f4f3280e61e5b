import { instanceStream } from '../domain/events.js';
import { decideInstance, instanceDecider, type Instance, type InstanceCommand, type InstanceEvent } from '../domain/instance.js';
import { StratusError } from '../domain/errors.js';
import type { Runtime } from '../server/runtime.js';
import { decideAndAppend, readFolded, type Folded } from './events.js';
import { metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';

/** The VM's name on its host: readable there, and unique because it ends with the instance id. */
export const vmNameOf = (instance: Pick<Instance, 'id' | 'name'>): string => `${instance.name.slice(0, 24)}-${instance.id}`;

export async function readInstance(rt: Pick<Runtime, 'store'>, instanceId: string): Promise<Instance> {
  const { state } = await readFolded(rt, instanceStream(instanceId), instanceDecider);
  if (!state) throw new StratusError('NOT_FOUND', `instance ${instanceId} not found`, { id: instanceId });
  return state;
}

/**
 * Records the operation's results on its instance. Once the operation no longer holds the instance's
 * task (its finish already landed, and this is a retry), there is nothing left to record.
 */
export function recordOnInstance(
  rt: Pick<Runtime, 'store'>,
  ctx: OperationContext,
  key: string,
  commands: (instance: Instance) => InstanceCommand[],
): Promise<Folded<Instance | null>> {
  return decideAndAppend<Instance | null, InstanceEvent>(
    rt,
    instanceStream(ctx.instanceId),
    instanceDecider,
    (state) => {
      if (!state || state.taskOperationId !== ctx.operationId) return [];
      const events: InstanceEvent[] = [];
      let s: Instance | null = state;
      for (const c of commands(state)) {
        for (const e of decideInstance(c, s)) {
          events.push(e);
          s = instanceDecider.evolve(s, e);
        }
      }
      return events;
    },
    { key, metadata: metadataOf(ctx), rounds: 10 },
  );
}

/**
 * The last step of an instance runbook that went well: what the step records (`before`, if anything)
 * and the release of the instance's task (`finishAction` SUCCEEDED) in one append under the step's
 * name-based key, then the operation SUCCEEDED. A retry after the append found the task released and
 * appends nothing.
 */
export async function finishSucceeded(
  rt: Pick<Runtime, 'store'>,
  ctx: OperationContext,
  step: string,
  before: (instance: Instance) => InstanceCommand[] = () => [],
): Promise<void> {
  await runStep(
    rt,
    ctx,
    step,
    async () => {
      await recordOnInstance(rt, ctx, writeKey(ctx, step), (instance) => [
        ...before(instance),
        { type: 'finishAction', data: { operationId: ctx.operationId, outcome: 'SUCCEEDED', at: new Date().toISOString() } },
      ]);
    },
    { succeedsOperation: true },
  );
}
