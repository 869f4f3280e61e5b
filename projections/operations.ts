import { evolveOperation, operationEvents, type Operation, type OperationEvent } from '../domain/operation.js';
import { loadDoc, upsertRow, type Projection } from './projection.js';

/** rm_operations: every operation with its steps and error, folded with the domain's `evolveOperation`. */
export const operationsProjection: Projection = {
  name: 'operations',
  streamPrefixes: ['operation-'],
  tables: ['rm_operations'],
  migrations: [
    {
      id: 'projections/operations/001',
      sql: `CREATE TABLE rm_operations (
        id uuid PRIMARY KEY,
        project_id uuid NOT NULL,
        kind text NOT NULL,
        status text NOT NULL,
        resource_id uuid NOT NULL,
        workflow_id text NOT NULL,
        run_id text,
        steps jsonb NOT NULL,
        error jsonb,
        client_request_id text,
        actor jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        finished_at timestamptz,
        version integer NOT NULL,
        doc jsonb NOT NULL
      );
      CREATE INDEX rm_operations_project ON rm_operations (project_id, created_at DESC, id);
      CREATE INDEX rm_operations_resource ON rm_operations (resource_id, created_at DESC);
      CREATE INDEX rm_operations_failed ON rm_operations (created_at DESC) WHERE status = 'FAILED';`,
    },
  ],
  async apply(tx, event) {
    if (!Object.hasOwn(operationEvents, event.type) || !event.streamId.startsWith('operation-')) return [];
    const id = event.streamId.slice('operation-'.length);
    const after = evolveOperation(await loadDoc<Operation>(tx, 'rm_operations', id), {
      type: event.type,
      data: event.data,
    } as OperationEvent);
    if (!after) return [];
    await upsertRow(tx, 'rm_operations', {
      id,
      project_id: after.projectId,
      kind: after.kind,
      status: after.status,
      resource_id: after.resourceId,
      workflow_id: after.workflowId,
      run_id: after.runId,
      steps: JSON.stringify(after.steps),
      error: after.error === null ? null : JSON.stringify(after.error),
      client_request_id: after.clientRequestId,
      actor: JSON.stringify(after.actor),
      created_at: after.createdAt,
      finished_at: after.finishedAt,
      version: after.version,
      doc: JSON.stringify(after),
    });
    return [{ kind: 'operation', id, projectId: after.projectId }];
  },
};
