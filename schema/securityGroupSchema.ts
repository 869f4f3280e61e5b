import { isAdmin, type Caller } from '../domain/identity.js';
import {
  AddSecurityGroupRuleInput,
  CreateSecurityGroupInput,
  defaultRules,
  defaultSecurityGroupId,
  RemoveSecurityGroupRuleInput,
  SetInstanceSecurityGroupsInput,
  type SecurityGroup,
  type SecurityGroupRule,
} from '../domain/securityGroup.js';
import type { Runtime } from '../server/runtime.js';
import * as commands from './commands/index.js';
import { builder, callerOf } from './builder.js';
import { OperationPayload, run } from './mutations.js';
import { InstanceType, OperationType } from './types.js';

/** CONTRACT.md's SecurityGroup and SecurityGroupRule, the securityGroups query, Instance.securityGroups and the group mutations. */

/**
 * A project's default group exists from its first boot; before that it is shown as it will be made (its
 * id and rules are name-based), so every project lists a `default` group from the start.
 */
const virtualDefault = (projectId: string): SecurityGroup => ({
  id: defaultSecurityGroupId(projectId),
  projectId,
  name: 'default',
  rules: defaultRules(defaultSecurityGroupId(projectId)),
  version: 0,
});

async function groupsOf(rt: Runtime, caller: Caller): Promise<SecurityGroup[]> {
  const params: unknown[] = [];
  const scope = isAdmin(caller) ? 'TRUE' : `project_id = $${params.push(caller.projectId)}`;
  const rows = await rt.db.query<{ doc: SecurityGroup }>(`SELECT doc FROM rm_security_groups WHERE ${scope} ORDER BY name, id`, params);
  const groups = rows.map((r) => r.doc);
  return groups.some((g) => g.id === defaultSecurityGroupId(caller.projectId)) ? groups : [virtualDefault(caller.projectId), ...groups];
}

async function groupsOfInstance(rt: Runtime, instance: { id: string; projectId: string }): Promise<SecurityGroup[]> {
  const [row] = await rt.db.query<{ group_ids: string[] }>('SELECT group_ids FROM rm_instance_security_groups WHERE instance_id = $1', [instance.id]);
  const ids = row?.group_ids ?? [defaultSecurityGroupId(instance.projectId)];
  const rows = await rt.db.query<{ doc: SecurityGroup }>('SELECT doc FROM rm_security_groups WHERE id = ANY($1) ORDER BY name, id', [ids]);
  const found = rows.map((r) => r.doc);
  if (ids.includes(defaultSecurityGroupId(instance.projectId)) && !found.some((g) => g.name === 'default')) found.unshift(virtualDefault(instance.projectId));
  return found;
}

export const SecurityGroupRuleType = builder.objectRef<SecurityGroupRule>('SecurityGroupRule').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    direction: t.exposeString('direction'),
    protocol: t.exposeString('protocol'),
    portMin: t.int({ nullable: true, resolve: (r) => r.portMin }),
    portMax: t.int({ nullable: true, resolve: (r) => r.portMax }),
    remoteCidr: t.exposeString('remoteCidr'),
    remoteGroupId: t.id({ nullable: true, description: 'Only from (to) members of this group; remoteCidr is then 0.0.0.0/0.', resolve: (r) => r.remoteGroupId }),
  }),
});

export const SecurityGroupType = builder.objectRef<SecurityGroup>('SecurityGroup').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    projectId: t.exposeID('projectId'),
    rules: t.field({ type: [SecurityGroupRuleType], resolve: (g) => g.rules }),
  }),
});

builder.objectField(InstanceType, 'securityGroups', (t) =>
  t.field({ type: [SecurityGroupType], resolve: (i, _a, ctx) => groupsOfInstance(ctx.rt, i) }),
);

builder.queryField('securityGroups', (t) =>
  t.field({ type: [SecurityGroupType], authScopes: { reader: true }, resolve: (_r, _a, ctx) => groupsOf(ctx.rt, callerOf(ctx)) }),
);

const SecurityGroupPayload = builder.objectRef<commands.SecurityGroupResult>('SecurityGroupPayload').implement({
  fields: (t) => ({
    securityGroup: t.field({ type: SecurityGroupType, resolve: (p) => p.securityGroup }),
    operation: t.field({ type: OperationType, nullable: true, description: 'Pushing the change to the hosts, one step per host.', resolve: (p) => p.operation ?? null }),
  }),
});

const CreateSecurityGroupInputType = builder.inputType('CreateSecurityGroupInput', { fields: (t) => ({ name: t.string({ required: true }) }) });
const AddSecurityGroupRuleInputType = builder.inputType('AddSecurityGroupRuleInput', {
  fields: (t) => ({
    securityGroupId: t.id({ required: true }),
    direction: t.string({ required: true, description: 'INGRESS or EGRESS' }),
    protocol: t.string({ required: true, description: 'TCP, UDP, ICMP or ANY' }),
    portMin: t.int({ required: false }),
    portMax: t.int({ required: false }),
    remoteCidr: t.string({ required: true }),
    remoteGroupId: t.id({ required: false }),
    clientRequestId: t.string({ required: false }),
  }),
});
const RemoveSecurityGroupRuleInputType = builder.inputType('RemoveSecurityGroupRuleInput', {
  fields: (t) => ({ id: t.id({ required: true }), clientRequestId: t.string({ required: false }) }),
});
const SetInstanceSecurityGroupsInputType = builder.inputType('SetInstanceSecurityGroupsInput', {
  fields: (t) => ({ instanceId: t.id({ required: true }), securityGroupIds: t.idList({ required: true }), clientRequestId: t.string({ required: false }) }),
});

builder.mutationFields((t) => ({
  createSecurityGroup: t.field({
    type: SecurityGroupPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateSecurityGroupInputType, required: true }) },
    resolve: run(CreateSecurityGroupInput, commands.createSecurityGroup, ['securityGroups']),
  }),
  addSecurityGroupRule: t.field({
    type: SecurityGroupPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: AddSecurityGroupRuleInputType, required: true }) },
    resolve: run(AddSecurityGroupRuleInput, commands.addSecurityGroupRule, ['securityGroups']),
  }),
  removeSecurityGroupRule: t.field({
    type: SecurityGroupPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: RemoveSecurityGroupRuleInputType, required: true }) },
    resolve: run(RemoveSecurityGroupRuleInput, commands.removeSecurityGroupRule, ['securityGroups']),
  }),
  setInstanceSecurityGroups: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: SetInstanceSecurityGroupsInputType, required: true }) },
    resolve: run(SetInstanceSecurityGroupsInput, commands.setInstanceSecurityGroups),
  }),
}));
