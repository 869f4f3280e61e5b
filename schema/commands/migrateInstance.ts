import { StratusError } from '../../domain/errors.js';
import type { Caller } from '../../domain/identity.js';
import type { MigrateInstanceInput } from '../../domain/inputs.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin } from './access.js';
import { actOnInstance } from './instanceActions.js';
import { readInstanceState, type LifecycleResult } from './operations.js';
import { readHost } from '../../activities/hostInventory.js';

/**
 * Live-migrates a RUNNING instance, cold-migrates a STOPPED one. Admin only, as in Nova: it names hosts,
 * which members never see. A target that does not exist is NOT_FOUND; the instance's own host or a host
 * of another hypervisor kind is BAD_USER_INPUT, refused before anything is written. Whether the target is
 * UP and has room is decided by the workflow's claim (NO_VALID_HOST), since it can change at any moment.
 */
export async function migrateInstance(rt: Runtime, caller: Caller, input: MigrateInstanceInput): Promise<LifecycleResult> {
  requireAdmin(caller);
  if (input.targetHostId) {
    const { state: target } = await readHost(rt, input.targetHostId);
    if (!target) throw new StratusError('NOT_FOUND', `host ${input.targetHostId} not found`, { id: input.targetHostId });
    const { state: instance } = await readInstanceState(rt, input.id);
    if (instance?.hostId) {
      if (instance.hostId === target.id) {
        throw new StratusError('BAD_USER_INPUT', `instance ${instance.id} is already on host ${target.name}`, { targetHostId: target.id });
      }
      const { state: source } = await readHost(rt, instance.hostId);
      if (source && source.hypervisor !== target.hypervisor) {
        throw new StratusError('BAD_USER_INPUT', `host ${target.name} runs ${target.hypervisor}; instance ${instance.id} runs on ${source.hypervisor}`, {
          targetHostId: target.id,
        });
      }
    }
  }
  return actOnInstance(rt, caller, input, { kind: 'MIGRATE', ...(input.targetHostId ? { targetHostId: input.targetHostId } : {}) });
}
