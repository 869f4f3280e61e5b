import { evolveInstance, instanceEvents, type Instance, type InstanceEvent } from '../domain/instance.js';
import { loadDoc, upsertRow, type Change, type Projection } from './projection.js';

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
  async apply(tx, event) {
    if (!Object.hasOwn(instanceEvents, event.type) || !event.streamId.startsWith('instance-')) return [];
    const id = event.streamId.slice('instance-'.length);
    const before = await loadDoc<Instance>(tx, 'rm_instances', id);
    const after = evolveInstance(before, { type: event.type, data: event.data } as InstanceEvent);
    if (!after) return [];
    const [previous] = await tx.query<{ error_code: string | null; error_message: string | null }>(
      'SELECT error_code, error_message FROM rm_instances WHERE id = $1',
      [id],
    );
    // The domain keeps one reason string; the read model keeps the failure's code and message apart.
    const error =
      event.type === 'InstanceFailed'
        ? { code: event.data.code, message: event.data.message }
        : after.errorReason === null
          ? { code: null, message: null }
          : { code: previous?.error_code ?? null, message: previous?.error_message ?? null };
    await upsertRow(tx, 'rm_instances', {
      id,
      project_id: after.projectId,
      name: after.name,
      state: after.state,
      task: after.task,
      task_operation_id: after.taskOperationId,
      flavor_id: after.flavor.id,
      vcpus: after.flavor.vcpus,
      memory_mb: after.flavor.memoryMb,
      disk_gb: after.flavor.diskGb,
      image_id: after.imageId,
      network_id: after.networkId,
      host_id: after.hostId,
      error_code: error.code,
      error_message: error.message,
      created_at: after.createdAt,
      launched_at: after.launchedAt,
      version: after.version,
      updated_at: event.recordedAt,
      doc: JSON.stringify(after),
    });
    const change: Change = { kind: 'instance', id, projectId: after.projectId };
    return [change];
  },
};
