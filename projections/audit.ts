import type { Queryable } from '../eventstore/index.js';
import type { Projection, StratusEvent } from './projection.js';

/** The project a stream's first event names, for the streams that belong to a project. */
function projectNamedBy(event: StratusEvent): string | null {
  switch (event.type) {
    case 'InstanceBootRequested':
    case 'VolumeCreateRequested':
    case 'OperationRequested':
    case 'TokenCreated':
      return event.data.projectId;
    case 'ProjectCreated':
      return event.data.id;
    default:
      return null;
  }
}

async function projectOf(tx: Queryable, event: StratusEvent): Promise<string | null> {
  const named = projectNamedBy(event);
  if (named !== null) {
    await tx.query('INSERT INTO rm_audit_streams (stream_id, project_id) VALUES ($1, $2) ON CONFLICT (stream_id) DO NOTHING', [
      event.streamId,
      named,
    ]);
    return named;
  }
  const [row] = await tx.query<{ project_id: string }>('SELECT project_id FROM rm_audit_streams WHERE stream_id = $1', [event.streamId]);
  return row?.project_id ?? null;
}

/**
 * rm_audit: every event, with the project it belongs to resolved per stream (its first event names it),
 * so tenants can read their own audit trail and the `events` subscription can filter by project. Events
 * of streams outside any project (hosts, flavors, images) have a null project: admins only.
 */
export const auditProjection: Projection = {
  name: 'audit',
  tables: ['rm_audit', 'rm_audit_streams'],
  migrations: [
    {
      id: 'projections/audit/001',
      sql: `CREATE TABLE rm_audit_streams (
        stream_id text PRIMARY KEY,
        project_id uuid NOT NULL
      );
      CREATE TABLE rm_audit (
        position bigint PRIMARY KEY,
        id uuid NOT NULL UNIQUE,
        stream_id text NOT NULL,
        version integer NOT NULL,
        project_id uuid,
        type text NOT NULL,
        data jsonb NOT NULL,
        metadata jsonb NOT NULL,
        recorded_at timestamptz NOT NULL
      );
      CREATE INDEX rm_audit_stream ON rm_audit (stream_id, version);
      CREATE INDEX rm_audit_project ON rm_audit (project_id, position);`,
    },
  ],
  async apply(tx, event) {
    const projectId = await projectOf(tx, event);
    await tx.query(
      `INSERT INTO rm_audit (position, id, stream_id, version, project_id, type, data, metadata, recorded_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (position) DO NOTHING`,
      [
        event.position,
        event.id,
        event.streamId,
        event.version,
        projectId,
        event.type,
        JSON.stringify(event.data),
        JSON.stringify(event.metadata),
        event.recordedAt,
      ],
    );
    return [{ kind: 'event', id: event.id, projectId, streamId: event.streamId, position: event.position }];
  },
};
