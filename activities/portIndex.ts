import type { Migration } from '../eventstore/index.js';
import { remoteGroupsOf, type CompiledRule } from '../hostagent/network.js';
import type { Runtime } from '../server/runtime.js';

/**
 * Which host carries which port, and the remote groups that port's rules name: the index the
 * membership fan-out asks "which hosts must hear that group G changed" in one query. One row per port
 * per host (a port is on two hosts while its instance moves), written by the step that plugs it or
 * changes its rules, BEFORE the agent call, and removed after the unplug: a row may outlive its port
 * (an extra push, harmless) but a port never lacks its row. Like host_heartbeats it is operational
 * state, not a projection, so it has no lag; ports plugged before it existed are indexed at their next
 * plug or rule change.
 */
export const portIndexMigrations: Migration[] = [
  {
    id: 'activities/port-index/001',
    sql: `CREATE TABLE IF NOT EXISTS port_remote_groups (
      port_id text NOT NULL, host_id text NOT NULL, project_id text NOT NULL, group_ids text[] NOT NULL,
      PRIMARY KEY (port_id, host_id))`,
  },
  { id: 'activities/port-index/002', sql: 'CREATE INDEX IF NOT EXISTS port_remote_groups_project ON port_remote_groups (project_id)' },
  // Membership news a step has announced and no worker has yet signalled to its project's fan-out (activities/membership.ts).
  {
    id: 'activities/port-index/003-membership-outbox',
    sql: 'CREATE TABLE IF NOT EXISTS membership_outbox (id bigserial PRIMARY KEY, project_id text NOT NULL, group_ids text[] NOT NULL)',
  },
];

export async function indexPort(rt: Pick<Runtime, 'db'>, port: { portId: string; hostId: string; projectId: string; rules: CompiledRule[] }): Promise<void> {
  await rt.db.query(
    `INSERT INTO port_remote_groups (port_id, host_id, project_id, group_ids) VALUES ($1, $2, $3, $4)
     ON CONFLICT (port_id, host_id) DO UPDATE SET project_id = EXCLUDED.project_id, group_ids = EXCLUDED.group_ids`,
    [port.portId, port.hostId, port.projectId, remoteGroupsOf(port.rules)],
  );
}

export async function forgetPort(rt: Pick<Runtime, 'db'>, portId: string, hostId: string): Promise<void> {
  await rt.db.query('DELETE FROM port_remote_groups WHERE port_id = $1 AND host_id = $2', [portId, hostId]);
}

/** Each host with a port of the project whose rules name any of `groupIds`, with the ones they name there. */
export async function hostsNamingGroups(rt: Pick<Runtime, 'db'>, projectId: string, groupIds: string[]): Promise<Map<string, string[]>> {
  const rows = await rt.db.query<{ host_id: string; groups: string[] }>(
    `SELECT host_id, array_agg(DISTINCT g ORDER BY g) AS groups
       FROM port_remote_groups, unnest(group_ids) AS g
      WHERE project_id = $1 AND g = ANY($2::text[])
      GROUP BY host_id ORDER BY host_id`,
    [projectId, groupIds],
  );
  return new Map(rows.map((r) => [r.host_id, r.groups]));
}

/** Every remote group the project's ports on one host name (what a host that missed news must be told again). */
export async function groupsNamedOnHost(rt: Pick<Runtime, 'db'>, projectId: string, hostId: string): Promise<string[]> {
  const rows = await rt.db.query<{ g: string }>(
    'SELECT DISTINCT g FROM port_remote_groups, unnest(group_ids) AS g WHERE project_id = $1 AND host_id = $2 ORDER BY g',
    [projectId, hostId],
  );
  return rows.map((r) => r.g);
}
