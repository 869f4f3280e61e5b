import { evolveSecurityGroup, securityGroupEvents, type SecurityGroup, type SecurityGroupEvent } from '../domain/securityGroup.js';
import { loadDoc, upsertRow, type Projection } from './projection.js';

/**
 * rm_security_groups (the group folded with the domain's evolve, kept whole in `doc`), one row per
 * rule in rm_security_group_rules (so a rule id finds its group), and rm_instance_security_groups,
 * the groups an instance was put in (none: the project's default group).
 */
export const securityGroupsProjection: Projection = {
  name: 'securityGroups',
  streamPrefixes: ['securitygroup-', 'instancegroups-'],
  tables: ['rm_security_group_rules', 'rm_security_groups', 'rm_instance_security_groups'],
  migrations: [
    {
      id: 'projections/securityGroups/001',
      sql: `CREATE TABLE rm_security_groups (
        id uuid PRIMARY KEY,
        project_id uuid NOT NULL,
        name text NOT NULL,
        doc jsonb NOT NULL
      );
      CREATE INDEX rm_security_groups_project ON rm_security_groups (project_id, name);
      CREATE TABLE rm_security_group_rules (
        id uuid PRIMARY KEY,
        security_group_id uuid NOT NULL
      );
      CREATE TABLE rm_instance_security_groups (
        instance_id uuid PRIMARY KEY,
        project_id uuid NOT NULL,
        group_ids jsonb NOT NULL
      );`,
    },
  ],
  async apply(tx, event) {
    if (!Object.hasOwn(securityGroupEvents, event.type)) return [];
    if (event.type === 'InstanceSecurityGroupsSet') {
      const d = event.data;
      await upsertRow(tx, 'rm_instance_security_groups', { instance_id: d.instanceId, project_id: d.projectId, group_ids: JSON.stringify(d.securityGroupIds) }, 'instance_id');
      return [{ kind: 'instance', id: d.instanceId, projectId: d.projectId }];
    }
    if (!event.streamId.startsWith('securitygroup-')) return [];
    const id = event.streamId.slice('securitygroup-'.length);
    const after = evolveSecurityGroup(await loadDoc<SecurityGroup>(tx, 'rm_security_groups', id), { type: event.type, data: event.data } as SecurityGroupEvent);
    if (!after) return [];
    await upsertRow(tx, 'rm_security_groups', { id, project_id: after.projectId, name: after.name, doc: JSON.stringify(after) });
    if (event.type === 'SecurityGroupRuleAdded') {
      await tx.query('INSERT INTO rm_security_group_rules (id, security_group_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [event.data.id, id]);
    }
    if (event.type === 'SecurityGroupRuleRemoved') await tx.query('DELETE FROM rm_security_group_rules WHERE id = $1', [event.data.ruleId]);
    return [{ kind: 'securityGroup', id, projectId: after.projectId }];
  },
};
