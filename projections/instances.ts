import { evolveInstance, instanceEvents, type Instance, type InstanceEvent } from '../domain/instance.js';
import type { Queryable } from '../eventstore/index.js';
import { upsertRow, type Change, type Projection, type StratusEvent } from './projection.js';

type Row = { doc: Instance | null; errorCode: string | null; errorMessage: string | null; updatedAt: Date | null };

/**
 * Folds the events into their instances' rows: each instance read once and written once per page. The
 * domain keeps one reason string; the read model keeps the failure's code and message apart, taken from
 * InstanceFailed and kept until the instance's reason clears.
 */
async function applyInstances(tx: Queryable, events: readonly StratusEvent[]): Promise<Change[]> {
  const mine = events.filter((e) => Object.hasOwn(instanceEvents, e.type) && e.streamId.startsWith('instance-'));
  if (mine.length === 0) return [];
  const ids = [...new Set(mine.map((e) => e.streamId.slice('instance-'.length)))];
  const stored = await tx.query<{ id: string; doc: Instance; error_code: string | null; error_message: string | null }>(
    'SELECT id, doc, error_code, error_message FROM rm_instances WHERE id = ANY($1::uuid[])',
    [ids],
  );
  const rows = new Map<string, Row>(stored.map((r) => [r.id, { doc: r.doc, errorCode: r.error_code, errorMessage: r.error_message, updatedAt: null }]));
  const touched = new Set<string>();
  for (const event of mine) {
    const id = event.streamId.slice('instance-'.length);
    const row = rows.get(id) ?? { doc: null, errorCode: null, errorMessage: null, updatedAt: null };
    const after = evolveInstance(row.doc, { type: event.type, data: event.data } as InstanceEvent);
    if (!after) continue;
    const failed = event.type === 'InstanceFailed' ? (event.data as { code: string; message: string }) : undefined;
    rows.set(id, {
      doc: after,
      errorCode: failed ? failed.code : after.errorReason === null ? null : row.errorCode,
      errorMessage: failed ? failed.message : after.errorReason === null ? null : row.errorMessage,
      updatedAt: event.recordedAt,
    });
    touched.add(id);
  }
  const changes: Change[] = [];
  for (const id of touched) {
    const { doc: after, errorCode, errorMessage, updatedAt } = rows.get(id)!;
    await upsertRow(tx, 'rm_instances', {
      id,
      project_id: after!.projectId,
      name: after!.name,
      state: after!.state,
      task: after!.task,
      task_operation_id: after!.taskOperationId,
      flavor_id: after!.flavor.id,
      vcpus: after!.flavor.vcpus,
      memory_mb: after!.flavor.memoryMb,
      disk_gb: after!.flavor.diskGb,
      image_id: after!.imageId,
      network_id: after!.networkId,
      host_id: after!.hostId,
      error_code: errorCode,
      error_message: errorMessage,
      created_at: after!.createdAt,
      launched_at: after!.launchedAt,
      version: after!.version,
      updated_at: updatedAt,
      doc: JSON.stringify(after),
    });
    changes.push({ kind: 'instance', id, projectId: after!.projectId });
  }
  return changes;
}

/**
 * rm_instances: one row per instance, folded with the domain's own `evolveInstance` (the same function
 * the deciders replay), so the API shows exactly the state the write side decides against. `doc` keeps
 * the whole domain state for the next fold; the columns are what queries filter and sort on.
 */
export const instancesProjection: Projection = {
  name: 'instances',
  streamPrefixes: ['instance-'],
  tables: ['rm_instances'],
  migrations: [
    {
      id: 'projections/instances/001',
      sql: `CREATE TABLE rm_instances (
        id uuid PRIMARY KEY,
        project_id uuid NOT NULL,
        name text NOT NULL,
        state text NOT NULL,
        task text,
        task_operation_id uuid,
        flavor_id uuid NOT NULL,
        vcpus integer NOT NULL,
        memory_mb integer NOT NULL,
        disk_gb integer NOT NULL,
        image_id uuid NOT NULL,
        network_id uuid,
        host_id uuid,
        error_code text,
        error_message text,
        created_at timestamptz NOT NULL,
        launched_at timestamptz,
        version integer NOT NULL,
        updated_at timestamptz NOT NULL,
        doc jsonb NOT NULL
      );
      CREATE INDEX rm_instances_project ON rm_instances (project_id, created_at, id);
      CREATE INDEX rm_instances_host ON rm_instances (host_id);`,
    },
  ],
  apply: (tx, event) => applyInstances(tx, [event]),
  // A page holds several events of a booting instance (created, placed, running): one read and one
  // write per instance in the page, not three queries per event.
  applyBatch: (tx, events) => applyInstances(tx, events),
};
