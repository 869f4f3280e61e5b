import type { Queryable } from '../eventstore/index.js';
import type { Change, Projection, StratusEvent } from './projection.js';

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

/**
 * A page of events into rm_audit in three statements whatever its length: the stored projects of its
 * streams, the streams it names, its rows. Each event gets the project it would get applied alone, in
 * order: a naming event its own, any other the one its stream was named with first (stored, or earlier
 * in the page).
 */
async function applyAudit(tx: Queryable, events: readonly StratusEvent[]): Promise<Change[]> {
  if (events.length === 0) return [];
  const streams = [...new Set(events.map((e) => e.streamId))];
  const stored = await tx.query<{ stream_id: string; project_id: string }>('SELECT stream_id, project_id FROM rm_audit_streams WHERE stream_id = ANY($1::text[])', [streams]);
  const current = new Map(stored.map((r) => [r.stream_id, r.project_id]));
  const naming = new Map<string, string>();
  const projects = events.map((event) => {
    const named = projectNamedBy(event);
    if (named === null) return current.get(event.streamId) ?? null;
    if (!current.has(event.streamId)) current.set(event.streamId, named);
    if (!naming.has(event.streamId)) naming.set(event.streamId, named);
    return named;
  });
  if (naming.size > 0) {
    await tx.query(
      `INSERT INTO rm_audit_streams (stream_id, project_id) SELECT * FROM unnest($1::text[], $2::uuid[]) ON CONFLICT (stream_id) DO NOTHING`,
      [[...naming.keys()], [...naming.values()]],
    );
  }
  await tx.query(
    `INSERT INTO rm_audit (position, id, stream_id, version, project_id, type, data, metadata, recorded_at)
     SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::integer[], $5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[], $9::timestamptz[])
     ON CONFLICT (position) DO NOTHING`,
    [
      events.map((e) => e.position),
      events.map((e) => e.id),
      events.map((e) => e.streamId),
      events.map((e) => e.version),
      projects,
      events.map((e) => e.type),
      events.map((e) => JSON.stringify(e.data)),
      events.map((e) => JSON.stringify(e.metadata)),
      events.map((e) => e.recordedAt),
    ],
  );
  return events.map((e, i) => ({ kind: 'event', id: e.id, projectId: projects[i]!, streamId: e.streamId, position: e.position }));
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
  apply: (tx, event) => applyAudit(tx, [event]),
  applyBatch: (tx, events) => applyAudit(tx, events),
};
