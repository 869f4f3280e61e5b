import type { SecurityGroupsRequest } from '../activities/index.js';
import { recordAddressFailure } from './addressRunbook.js';
import { operationContext, steps, type OperationInput } from './runbook.js';

export interface SecurityGroupsInput extends OperationInput {
  securityGroups: SecurityGroupsRequest;
}

/**
 * A rule changed, or an instance's groups did: record the new groups (setInstanceSecurityGroups), then
 * apply the rules on every host that carries a port of the project, one step per host
 * (`applyRules:<host>`), and record the operation done.
 */
export async function updateSecurityGroups(input: SecurityGroupsInput): Promise<void> {
  const ctx = operationContext(input);
  const request = input.securityGroups;
  try {
    if (request.instanceId && request.securityGroupIds) {
      await steps.setInstanceGroups(ctx, { projectId: request.projectId, instanceId: request.instanceId, securityGroupIds: request.securityGroupIds });
    }
    const hosts = await steps.hostsOfProject(ctx, request);
    for (const host of hosts) await steps.applyRulesOnHost(ctx, { ...request, hostId: host.hostId, hostName: host.name });
    await steps.recordRulesApplied(ctx);
  } catch (err) {
    await recordAddressFailure(ctx, err);
  }
}
