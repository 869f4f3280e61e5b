import { evolveOperation, operationEvents, type Operation, type OperationEvent } from '../domain/operation.js';
import type { Queryable } from '../eventstore/index.js';
import { upsertRow, type Change, type Projection, type StratusEvent } from './projection.js';

/** Folds the events into their operations' rows: each operation read once and written once. */
async function applyOperations(tx: Queryable, events: readonly StratusEvent[]): Promise<Change[]> {
  const mine = events.filter((e) => Object.hasOwn(operationEvents, e.type) && e.streamId.startsWith('operation-'));
  if (mine.length === 0) return [];
  const ids = [...new Set(mine.map((e) => e.streamId.slice('operation-'.length)))];
  const rows = await tx.query<{ id: string; doc: Operation }>('SELECT id, doc FROM rm_operations WHERE id = ANY($1::uuid[])', [ids]);
  const docs = new Map<string, Operation | null>(rows.map((r) => [r.id, r.doc]));
  const touched = new Set<string>();
  for (const event of mine) {
    const id = event.streamId.slice('operation-'.length);
    const after = evolveOperation(docs.get(id) ?? null, { type: event.type, data: event.data } as OperationEvent);
    if (!after) continue;
    docs.set(id, after);
    touched.add(id);
  }
  const changes: Change[] = [];
  for (const id of touched) {
    const after = docs.get(id)!;
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
    changes.push({ kind: 'operation', id, projectId: after.projectId });
  }
  return changes;
}

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
  apply: (tx, event) => applyOperations(tx, [event]),
  // A boot's page holds several events of its operation (steps starting and finishing): one read and
  // one write per operation in the page, not per event.
  applyBatch: (tx, events) => applyOperations(tx, events),
};
