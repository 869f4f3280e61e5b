import { instanceGroupsStream } from '../domain/events.js';
import { instanceGroupsDecider } from '../domain/securityGroup.js';
import { hostStream } from '../domain/events.js';
import type { Runtime } from '../server/runtime.js';
import { callAgent } from './agentCalls.js';
import { decideAndAppend } from './events.js';
import { agentKey, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { indexPort } from './portIndex.js';
import { announceMembershipChange } from './membership.js';
import { compileRules, groupMembers, groupsOf, projectPorts, remoteGroupsOf, unlessUnsupported } from './ports.js';

const now = () => new Date().toISOString();

/** What an UPDATE_SECURITY_GROUPS operation carries: the project whose hosts it updates, and a new group set for one instance. */
export interface SecurityGroupsRequest {
  projectId: string;
  instanceId?: string;
  securityGroupIds?: string[];
}

/**
 * The steps of updateSecurityGroups: record an instance's new groups, then one step per host that
 * carries a port of the project, each replacing the rules of every such port there with what the
 * groups say now. A step recomputes from the streams when it runs, so the last one to run wins with
 * the newest rules, whatever order two updates ran in.
 */
export function securityGroupSteps(rt: Runtime) {
  return {
    async setInstanceGroups(ctx: OperationContext, request: Required<SecurityGroupsRequest>): Promise<void> {
      await runStep(rt, ctx, 'setGroups', async () => {
        const before = await groupsOf(rt, { id: request.instanceId, projectId: request.projectId });
        await decideAndAppend(
          rt,
          instanceGroupsStream(request.instanceId),
          instanceGroupsDecider,
          (s) => instanceGroupsDecider.decide({ type: 'set', data: { ...request, operationId: ctx.operationId, at: now() } }, s),
          { key: writeKey(ctx, 'setGroups'), metadata: metadataOf(ctx), rounds: 10 },
        );
        // The groups it left and joined changed members: hosts whose ports name them hear it from the fan-out.
        await announceMembershipChange(rt, request.projectId, [...before, ...request.securityGroupIds]);
      });
    },

    /** The hosts carrying the project's ports, with the names their steps show. Reads only. */
    async hostsOfProject(_ctx: OperationContext, request: SecurityGroupsRequest): Promise<{ hostId: string; name: string }[]> {
      const hostIds = [...new Set((await projectPorts(rt, request.projectId)).flatMap((p) => (p.instance.hostId ? [p.instance.hostId] : [])))].sort();
      return Promise.all(
        hostIds.map(async (hostId) => {
          const [registered] = await rt.store.readStream(hostStream(hostId), { limit: 1 });
          return { hostId, name: registered?.type === 'HostRegistered' ? registered.data.name : hostId };
        }),
      );
    },

    async applyRulesOnHost(ctx: OperationContext, request: SecurityGroupsRequest & { hostId: string; hostName: string }): Promise<void> {
      const step = `applyRules:${request.hostName}`;
      await runStep(rt, ctx, step, async () => {
        const here = (await projectPorts(rt, request.projectId)).filter((p) => p.instance.hostId === request.hostId);
        const ports = await Promise.all(here.map(async (p) => ({ portId: p.address.id, rules: await compileRules(rt, p.instance) })));
        // Indexed before the host is told: the fan-out must find this host for the groups these rules name.
        for (const p of ports) await indexPort(rt, { portId: p.portId, hostId: request.hostId, projectId: request.projectId, rules: p.rules });
        const groups = remoteGroupsOf(ports.flatMap((p) => p.rules));
        if (groups.length > 0) {
          const members = await groupMembers(rt, request.projectId, groups);
          await unlessUnsupported(callAgent(rt, request.hostId, 'setGroupMembers', { groups: members }, { idempotencyKey: agentKey(ctx, `${step}:members`) }));
          // A fan-out round that read before this push may land after it: one more reads after.
          await announceMembershipChange(rt, request.projectId, groups);
        }
        await unlessUnsupported(callAgent(rt, request.hostId, 'setPortRules', { ports }, { idempotencyKey: agentKey(ctx, step) }));
      });
    },

    async recordRulesApplied(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'recordApplied', async () => {}, { succeedsOperation: true });
    },
  };
}
