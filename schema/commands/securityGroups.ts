import { randomUUID } from 'node:crypto';
import { decideAndAppend, readFolded } from '../../activities/events.js';
import { StratusError } from '../../domain/errors.js';
import { securityGroupStream } from '../../domain/events.js';
import { canRead, type Caller } from '../../domain/identity.js';
import {
  decideSecurityGroup,
  defaultRules,
  defaultSecurityGroupId,
  securityGroupDecider,
  type AddSecurityGroupRuleInput,
  type CreateSecurityGroupInput,
  type RemoveSecurityGroupRuleInput,
  type SecurityGroup,
  type SecurityGroupEvent,
  type SetInstanceSecurityGroupsInput,
} from '../../domain/securityGroup.js';
import { WrongExpectedVersion } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';
import { requireMutableIn, requireWriter } from './access.js';
import { appendNew, commandMetadata, now, readInstanceState, type LifecycleResult } from './operations.js';
import { startResourceOperation } from './resourceOperations.js';

const notFound = (id: string) => () => new StratusError('NOT_FOUND', `security group ${id} not found`, { id });

export interface SecurityGroupResult {
  securityGroup: SecurityGroup;
  operation?: LifecycleResult['operation'];
}

/** The project's `default` group (ingress from its own members, all egress), made on first use. */
export async function ensureDefaultSecurityGroup(rt: Runtime, caller: Caller, projectId: string): Promise<SecurityGroup> {
  const id = defaultSecurityGroupId(projectId);
  const { state } = await readFolded(rt, securityGroupStream(id), securityGroupDecider);
  if (state) return state;
  const events: SecurityGroupEvent[] = [
    { type: 'SecurityGroupCreated', data: { securityGroupId: id, projectId, name: 'default', at: now() } },
    ...defaultRules(id).map((rule) => ({ type: 'SecurityGroupRuleAdded' as const, data: { ...rule, at: now() } })),
  ];
  try {
    await appendNew(rt, securityGroupStream(id), events, 'noStream', commandMetadata(caller));
  } catch (e) {
    // A racing first use made it: the same group, by its name-based id.
    if (!(e instanceof WrongExpectedVersion)) throw e;
  }
  return (await readFolded(rt, securityGroupStream(id), securityGroupDecider)).state!;
}

async function visibleGroup(rt: Runtime, caller: Caller, id: string): Promise<SecurityGroup> {
  const { state } = await readFolded(rt, securityGroupStream(id), securityGroupDecider);
  if (!state || !canRead(caller, state.projectId)) throw notFound(id)();
  return state;
}

/** Every host carrying a port of the project gets the new rules: an operation with a step per host. */
const pushRules = (rt: Runtime, caller: Caller, group: SecurityGroup, clientRequestId?: string) =>
  startResourceOperation(rt, caller, 'UPDATE_SECURITY_GROUPS', group.id, group.projectId, { securityGroups: { projectId: group.projectId } }, clientRequestId);

export async function createSecurityGroup(rt: Runtime, caller: Caller, input: CreateSecurityGroupInput): Promise<SecurityGroupResult> {
  requireWriter(caller);
  if (input.name === 'default') throw new StratusError('CONFLICT', 'every project has its own default group already');
  await ensureDefaultSecurityGroup(rt, caller, caller.projectId);
  const id = randomUUID();
  const events = decideSecurityGroup({ type: 'create', data: { securityGroupId: id, projectId: caller.projectId, name: input.name, at: now() } }, null);
  await appendNew(rt, securityGroupStream(id), events, 'noStream', commandMetadata(caller));
  return { securityGroup: events.reduce(securityGroupDecider.evolve, null as SecurityGroup | null)! };
}

export async function addSecurityGroupRule(rt: Runtime, caller: Caller, input: AddSecurityGroupRuleInput): Promise<SecurityGroupResult> {
  requireWriter(caller);
  if (input.securityGroupId === defaultSecurityGroupId(caller.projectId)) await ensureDefaultSecurityGroup(rt, caller, caller.projectId);
  const group = await visibleGroup(rt, caller, input.securityGroupId);
  requireMutableIn(caller, group.projectId, notFound(group.id));
  if (input.remoteGroupId) await visibleGroup(rt, caller, input.remoteGroupId);
  const rule = {
    id: randomUUID(),
    direction: input.direction,
    protocol: input.protocol,
    portMin: input.portMin ?? null,
    portMax: input.portMax ?? input.portMin ?? null,
    remoteCidr: input.remoteCidr,
    remoteGroupId: input.remoteGroupId ?? null,
  };
  const { state } = await decideAndAppend(rt, securityGroupStream(group.id), securityGroupDecider, (s) => decideSecurityGroup({ type: 'addRule', data: { ...rule, at: now() } }, s), {
    key: `addRule:${rule.id}`,
    metadata: commandMetadata(caller),
  });
  const { operation } = await pushRules(rt, caller, state!, input.clientRequestId);
  return { securityGroup: state!, operation };
}

/** The rule is found among the caller's groups by the read model, then removed on its group's stream. */
export async function removeSecurityGroupRule(rt: Runtime, caller: Caller, input: RemoveSecurityGroupRuleInput): Promise<SecurityGroupResult> {
  requireWriter(caller);
  const [row] = await rt.db.query<{ security_group_id: string }>('SELECT security_group_id FROM rm_security_group_rules WHERE id = $1', [input.id]);
  if (!row) throw new StratusError('NOT_FOUND', `rule ${input.id} not found`, { id: input.id });
  const group = await visibleGroup(rt, caller, row.security_group_id).catch(() => {
    throw new StratusError('NOT_FOUND', `rule ${input.id} not found`, { id: input.id });
  });
  requireMutableIn(caller, group.projectId, notFound(group.id));
  const { state } = await decideAndAppend(rt, securityGroupStream(group.id), securityGroupDecider, (s) => decideSecurityGroup({ type: 'removeRule', data: { ruleId: input.id, at: now() } }, s), {
    key: `removeRule:${input.id}:${randomUUID()}`,
    metadata: commandMetadata(caller),
  });
  const { operation } = await pushRules(rt, caller, state!, input.clientRequestId);
  return { securityGroup: state!, operation };
}

/** setInstanceSecurityGroups: the instance's groups, replaced; its project's hosts get the new rules. */
export async function setInstanceSecurityGroups(rt: Runtime, caller: Caller, input: SetInstanceSecurityGroupsInput): Promise<LifecycleResult> {
  requireWriter(caller);
  const { state: instance } = await readInstanceState(rt, input.instanceId);
  const instanceNotFound = () => new StratusError('NOT_FOUND', `instance ${input.instanceId} not found`, { id: input.instanceId });
  if (!instance || instance.state === 'DELETED') throw instanceNotFound();
  requireMutableIn(caller, instance.projectId, instanceNotFound);
  await ensureDefaultSecurityGroup(rt, caller, instance.projectId);
  const ids = [...new Set(input.securityGroupIds)];
  for (const id of ids) {
    const group = await visibleGroup(rt, caller, id);
    if (group.projectId !== instance.projectId) throw notFound(id)();
  }
  const result = await startResourceOperation(
    rt,
    caller,
    'UPDATE_SECURITY_GROUPS',
    instance.id,
    instance.projectId,
    { securityGroups: { projectId: instance.projectId, instanceId: instance.id, securityGroupIds: ids } },
    input.clientRequestId,
  );
  return { ...result, instance };
}
