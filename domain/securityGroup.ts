import { z } from 'zod';
import { parseSubnet } from './cidr.js';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { ProjectName } from './identity.js';
import { idNamespaces, nameBasedUuid } from './nameBasedId.js';
import { ClientRequestId } from './operation.js';
import { Id, Timestamp } from './scalars.js';

export const RuleDirection = z.enum(['INGRESS', 'EGRESS']);
export const RuleProtocol = z.enum(['TCP', 'UDP', 'ICMP', 'ANY']);

/** An IPv4 prefix a rule admits: `0.0.0.0/0` for anyone. */
const RemoteCidr = z.string().refine((s) => typeof parseSubnet(s) !== 'string', 'an IPv4 CIDR such as 10.0.0.0/24 (host bits zero)');
const Port = z.number().int().min(1).max(65535);

export const SecurityGroupRule = z.object({
  id: Id,
  direction: RuleDirection,
  protocol: RuleProtocol,
  portMin: Port.nullable(),
  portMax: Port.nullable(),
  remoteCidr: z.string(),
  /** Traffic from (or to) the members of this group only, Neutron's remote_group_id; the default group's own rule. */
  remoteGroupId: Id.nullable(),
});
export type SecurityGroupRule = z.infer<typeof SecurityGroupRule>;

/** Every event on a `securitygroup-<id>` stream, and on an instance's `instancegroups-<id>` binding stream. */
export const securityGroupEvents = {
  SecurityGroupCreated: z.object({ securityGroupId: Id, projectId: Id, name: z.string().min(1).max(63), at: Timestamp }),
  SecurityGroupRuleAdded: SecurityGroupRule.extend({ at: Timestamp }),
  SecurityGroupRuleRemoved: z.object({ ruleId: Id, at: Timestamp }),
  InstanceSecurityGroupsSet: z.object({ instanceId: Id, projectId: Id, securityGroupIds: z.array(Id).max(16), operationId: Id, at: Timestamp }),
} satisfies Record<string, z.ZodType>;
export type SecurityGroupEvent = EventOf<Pick<typeof securityGroupEvents, 'SecurityGroupCreated' | 'SecurityGroupRuleAdded' | 'SecurityGroupRuleRemoved'>>;
export type InstanceGroupsEvent = EventOf<Pick<typeof securityGroupEvents, 'InstanceSecurityGroupsSet'>>;

export const SecurityGroup = z.object({
  id: Id,
  projectId: Id,
  name: z.string(),
  rules: z.array(SecurityGroupRule),
  version: z.number().int().nonnegative(),
});
export type SecurityGroup = z.infer<typeof SecurityGroup>;

export type SecurityGroupCommand =
  | { type: 'create'; data: z.infer<typeof securityGroupEvents.SecurityGroupCreated> }
  | { type: 'addRule'; data: z.infer<typeof securityGroupEvents.SecurityGroupRuleAdded> }
  | { type: 'removeRule'; data: { ruleId: string; at: string } };

const sameRule = (a: Omit<SecurityGroupRule, 'id'>, b: Omit<SecurityGroupRule, 'id'>) =>
  a.direction === b.direction && a.protocol === b.protocol && a.portMin === b.portMin && a.portMax === b.portMax && a.remoteCidr === b.remoteCidr && a.remoteGroupId === b.remoteGroupId;

export function decideSecurityGroup(command: SecurityGroupCommand, state: SecurityGroup | null): SecurityGroupEvent[] {
  if (command.type === 'create') return state ? [] : [{ type: 'SecurityGroupCreated', data: command.data }];
  if (!state) throw new StratusError('NOT_FOUND', 'security group not found');
  switch (command.type) {
    case 'addRule': {
      if (state.rules.some((r) => r.id === command.data.id)) return [];
      const twin = state.rules.find((r) => sameRule(r, command.data));
      // Neutron answers a duplicate rule with 409 as well.
      if (twin) throw new StratusError('CONFLICT', `security group ${state.name} already has this rule (${twin.id})`, { ruleId: twin.id });
      return [{ type: 'SecurityGroupRuleAdded', data: command.data }];
    }
    case 'removeRule':
      if (!state.rules.some((r) => r.id === command.data.ruleId)) throw new StratusError('NOT_FOUND', `rule ${command.data.ruleId} not found`, { id: command.data.ruleId });
      return [{ type: 'SecurityGroupRuleRemoved', data: command.data }];
  }
}

export function evolveSecurityGroup(state: SecurityGroup | null, event: SecurityGroupEvent): SecurityGroup | null {
  if (event.type === 'SecurityGroupCreated') {
    return { id: event.data.securityGroupId, projectId: event.data.projectId, name: event.data.name, rules: [], version: 1 };
  }
  if (!state) return state;
  const version = state.version + 1;
  switch (event.type) {
    case 'SecurityGroupRuleAdded': {
      const { at: _at, ...rule } = event.data;
      return { ...state, rules: [...state.rules, rule], version };
    }
    case 'SecurityGroupRuleRemoved':
      return { ...state, rules: state.rules.filter((r) => r.id !== event.data.ruleId), version };
  }
}

export const securityGroupDecider: Decider<SecurityGroup | null, SecurityGroupCommand, SecurityGroupEvent> = {
  decide: decideSecurityGroup,
  evolve: evolveSecurityGroup,
  initialState: () => null,
};

/** An instance's groups: null until first set, which means the project's default group. */
export const InstanceGroups = z.object({ securityGroupIds: z.array(Id), version: z.number().int() }).nullable();
export type InstanceGroups = z.infer<typeof InstanceGroups>;

export const instanceGroupsDecider: Decider<InstanceGroups, { type: 'set'; data: z.infer<typeof securityGroupEvents.InstanceSecurityGroupsSet> }, InstanceGroupsEvent> = {
  decide: (command, state) =>
    state && state.securityGroupIds.join() === command.data.securityGroupIds.join() ? [] : [{ type: 'InstanceSecurityGroupsSet', data: command.data }],
  evolve: (state, event) => ({ securityGroupIds: event.data.securityGroupIds, version: (state?.version ?? 0) + 1 }),
  initialState: () => null,
};

/** Each project's `default` group has a name-based id, so racing first uses make one. */
export const defaultSecurityGroupId = (projectId: string): string => nameBasedUuid(idNamespaces.securityGroup, `default\n${projectId}`);

/** Neutron's default group: ingress from members of the same group, all egress; rule ids fixed by the group. */
export function defaultRules(groupId: string): SecurityGroupRule[] {
  return [
    { id: nameBasedUuid(idNamespaces.securityGroup, `${groupId}:ingress`), direction: 'INGRESS', protocol: 'ANY', portMin: null, portMax: null, remoteCidr: '0.0.0.0/0', remoteGroupId: groupId },
    { id: nameBasedUuid(idNamespaces.securityGroup, `${groupId}:egress`), direction: 'EGRESS', protocol: 'ANY', portMin: null, portMax: null, remoteCidr: '0.0.0.0/0', remoteGroupId: null },
  ];
}

export const CreateSecurityGroupInput = z.object({ name: ProjectName });
export type CreateSecurityGroupInput = z.infer<typeof CreateSecurityGroupInput>;

export const AddSecurityGroupRuleInput = z
  .object({
    securityGroupId: Id,
    direction: RuleDirection,
    protocol: RuleProtocol,
    portMin: Port.optional(),
    portMax: Port.optional(),
    remoteCidr: RemoteCidr,
    remoteGroupId: Id.optional(),
    clientRequestId: ClientRequestId.optional(),
  })
  .superRefine((r, ctx) => {
    const ported = r.protocol === 'TCP' || r.protocol === 'UDP';
    if (!ported && (r.portMin !== undefined || r.portMax !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['portMin'], message: `${r.protocol} has no ports` });
    }
    if (r.portMin !== undefined && r.portMax !== undefined && r.portMin > r.portMax) {
      ctx.addIssue({ code: 'custom', path: ['portMax'], message: 'portMax is below portMin' });
    }
  });
export type AddSecurityGroupRuleInput = z.infer<typeof AddSecurityGroupRuleInput>;

export const RemoveSecurityGroupRuleInput = z.object({ id: Id, clientRequestId: ClientRequestId.optional() });
export type RemoveSecurityGroupRuleInput = z.infer<typeof RemoveSecurityGroupRuleInput>;

export const SetInstanceSecurityGroupsInput = z.object({ instanceId: Id, securityGroupIds: z.array(Id).max(16), clientRequestId: ClientRequestId.optional() });
export type SetInstanceSecurityGroupsInput = z.infer<typeof SetInstanceSecurityGroupsInput>;
