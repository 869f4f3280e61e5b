import { instanceStream, operationStream } from '../domain/events.js';
import { type Host } from '../domain/host.js';
import { decideInstance, instanceDecider, type Instance, type InstanceEvent } from '../domain/instance.js';
import { idNamespaces, nameBasedUuid } from '../domain/nameBasedId.js';
import { decideOperation, operationDecider, workflowIdOf, type Operation, type OperationEvent } from '../domain/operation.js';
import type { EventMetadata } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { activityContext, callAgent } from './agentCalls.js';
import { decideAndAppend, readFolded } from './events.js';
import { componentLog } from '../server/log.js';
import { appendToHost, readHost } from './hostInventory.js';
import { recordHeartbeat } from './hostHeartbeats.js';
import { vmNameOf } from './instanceRecords.js';

const log = componentLog('host-health');

/** Why the health check turned a host DOWN; only a DOWN with this reason is turned UP by it again. */
export const UNREACHABLE = 'agent-unreachable';
/** The actor of what the health check records (no token asked for it). */
export const HEALTH_ACTOR = 'system:host-health';
/** Operations nobody's project asked for (an evacuation the health check started) belong here. */
export const SYSTEM_PROJECT_ID = nameBasedUuid(idNamespaces.operation, 'stratus system project');

const now = () => new Date().toISOString();

function healthMetadata(): EventMetadata {
  const run = activityContext()?.info.workflowExecution;
  return { actor: HEALTH_ACTOR, ...(run ? { workflowId: run.workflowId, runId: run.runId } : {}) };
}

/** The instances whose host this is, as their own streams say (a claim alone may be a mover's). */
async function instancesOn(rt: Runtime, host: Host): Promise<Instance[]> {
  const all = await Promise.all(Object.keys(host.claims).map(async (id) => (await readFolded(rt, instanceStream(id), instanceDecider)).state));
  return all.filter((i): i is Instance => i !== null && i.hostId === host.id && i.state !== 'DELETED');
}

async function noteInstances(rt: Runtime, host: Host, down: boolean, reason: string, key: string): Promise<string[]> {
  const instances = await instancesOn(rt, host);
  for (const i of instances) {
    await decideAndAppend<Instance | null, InstanceEvent>(
      rt,
      instanceStream(i.id),
      instanceDecider,
      (state) => decideInstance({ type: 'noteHost', data: { hostId: host.id, down, reason, at: now() } }, state),
      { key: `${key}:${i.id}`, metadata: healthMetadata(), rounds: 20 },
    );
  }
  return instances.map((i) => i.id);
}

async function setHostState(rt: Runtime, hostId: string, state: 'UP' | 'DOWN', reason: string, key: string) {
  return appendToHost(rt, hostId, { type: 'setState', data: { state, reason, at: now() } }, { key, metadata: healthMetadata(), rounds: 20 });
}

/** The host health workflow's activities (workflows/hostHealth.ts). */
export function hostHealthSteps(rt: Runtime) {
  return {
    /** Asks the agent for hostInfo; an answer is a heartbeat (kept in host_heartbeats, not the log). */
    async probeHost(hostId: string, timeoutMs: number): Promise<boolean> {
      try {
        await callAgent(rt, hostId, 'hostInfo', {}, { timeoutMs });
      } catch {
        return false;
      }
      // The agent answered: a heartbeat that cannot be stored (the database away a moment) is not a
      // miss, and must not fail the check, whose workflow does not retry it.
      await recordHeartbeat(rt, hostId, new Date()).catch((e: unknown) => log.warn({ err: e, hostId }, 'could not store a heartbeat'));
      return true;
    },

    /**
     * The agent missed its checks: the host turns DOWN (an event with the reason) and each of its
     * instances is noted with it. Returns the version of the host stream after the change, which names
     * this outage (the evacuation and the fencing of it derive their ids from it).
     */
    async hostLost(hostId: string, misses: number): Promise<{ outage: number; instanceIds: string[] }> {
      const { state: before } = await readHost(rt, hostId);
      if (!before) return { outage: 0, instanceIds: [] };
      const reason = `${UNREACHABLE}: no answer to ${misses} checks`;
      const { state: host, version } = await setHostState(rt, hostId, 'DOWN', UNREACHABLE, `health:${hostId}:down:${before.version}`);
      const instanceIds = await noteInstances(rt, host!, true, reason, `health:${hostId}:noted-down:${version}`);
      return { outage: version, instanceIds };
    },

    /** The EVACUATE_HOST operation of one outage, recorded once however often this is retried. */
    async openEvacuation(hostId: string, outage: number): Promise<{ operationId: string; workflowId: string }> {
      const operationId = nameBasedUuid(idNamespaces.operation, `evacuate\n${hostId}\n${outage}`);
      const actor = { tokenId: HEALTH_ACTOR, projectId: SYSTEM_PROJECT_ID, role: 'ADMIN' as const };
      await decideAndAppend<Operation | null, OperationEvent>(
        rt,
        operationStream(operationId),
        operationDecider,
        (op) => decideOperation({ type: 'request', data: { operationId, kind: 'EVACUATE_HOST', resourceId: hostId, projectId: SYSTEM_PROJECT_ID, actor, at: now() } }, op),
        { key: `health:${hostId}:evacuate:${outage}`, metadata: { ...healthMetadata(), operationId }, rounds: 5 },
      );
      return { operationId, workflowId: workflowIdOf(operationId) };
    },

    /**
     * The agent answers again. Its instances are told first, each on its own stream: an instance whose note
     * is cleared there can no longer be taken by an evacuation (its move is refused), so the set checked
     * below cannot change under the check. Then fencing, so nothing runs twice: every VM there whose
     * instance now lives elsewhere (evacuated, or moved back by an undone migration) or is gone is destroyed.
     * Only then does the host turn UP (if the health check had turned it DOWN).
     */
    async hostAnswered(hostId: string): Promise<{ fenced: string[] }> {
      const { state: host, version } = await readHost(rt, hostId);
      if (!host || host.state !== 'DOWN' || host.stateReason !== UNREACHABLE) return { fenced: [] };
      await noteInstances(rt, host, false, 'agent-answers', `health:${hostId}:noted-up:${version}`);
      const { vms } = await callAgent(rt, hostId, 'listVms', {});
      const fenced: string[] = [];
      for (const vm of vms) {
        const instanceId = vm.labels.instanceId;
        const instance = instanceId ? (await readFolded(rt, instanceStream(instanceId), instanceDecider)).state : null;
        const belongsHere = instance !== null && instance.state !== 'DELETED' && instance.hostId === hostId && vmNameOf(instance) === vm.name;
        if (belongsHere) continue;
        await callAgent(rt, hostId, 'destroyVm', { name: vm.name }, { idempotencyKey: `fence:${hostId}:${version}:${vm.name}` });
        fenced.push(vm.name);
      }
      await setHostState(rt, hostId, 'UP', 'agent-answers', `health:${hostId}:up:${version}`);
      return { fenced };
    },
  };
}
