import type { Flavor, Image } from '../domain/catalog.js';
import type { Host } from '../domain/host.js';
import { canRead, isAdmin, type Caller } from '../domain/identity.js';
import type { Instance } from '../domain/instance.js';
import type { Operation } from '../domain/operation.js';
import type { Runtime } from '../server/runtime.js';

/**
 * The API's reads of the read model. Instances, hosts and operations are served from the domain state
 * the projections keep in `doc`, the same shape the commands return, so one GraphQL type serves both.
 * Tenancy is applied here: what the caller may not see is simply not found.
 */

export interface AuditEvent {
  id: string;
  streamId: string;
  version: number;
  position: string;
  projectId: string | null;
  type: string;
  data: unknown;
  metadata: unknown;
  recordedAt: Date;
}

interface AuditRow {
  id: string;
  stream_id: string;
  version: number;
  position: string;
  project_id: string | null;
  type: string;
  data: unknown;
  metadata: unknown;
  recorded_at: Date;
}

const auditEvent = (r: AuditRow): AuditEvent => ({
  id: r.id,
  streamId: r.stream_id,
  version: r.version,
  position: r.position,
  projectId: r.project_id,
  type: r.type,
  data: r.data,
  metadata: r.metadata,
  recordedAt: r.recorded_at,
});

const AUDIT_COLUMNS = 'id, stream_id, version, position::text AS position, project_id, type, data, metadata, recorded_at';

/** `project_id = ANY(...)` unless the caller is an admin: the one place tenancy enters a list query. */
const projectScope = (caller: Caller, column: string, params: unknown[]): string => {
  if (isAdmin(caller)) return 'TRUE';
  params.push(caller.projectId);
  return `${column} = $${params.length}`;
};

export async function instanceById(rt: Runtime, caller: Caller, id: string): Promise<Instance | null> {
  const [row] = await rt.db.query<{ doc: Instance }>('SELECT doc FROM rm_instances WHERE id = $1', [id]);
  return row && canRead(caller, row.doc.projectId) ? row.doc : null;
}

export interface InstanceFilter {
  state?: string | null;
  hostId?: string | null;
  name?: string | null;
}

export async function instancesPage(rt: Runtime, caller: Caller, filter: InstanceFilter, limit: number, offset: number): Promise<Instance[]> {
  const params: unknown[] = [];
  const where = [projectScope(caller, 'project_id', params)];
  if (filter.state) where.push(`state = $${params.push(filter.state)}`);
  // Deleted instances are history: listed only when asked for by state.
  else where.push(`state <> 'DELETED'`);
  if (filter.hostId) where.push(`host_id = $${params.push(filter.hostId)}`);
  if (filter.name) where.push(`name = $${params.push(filter.name)}`);
  const rows = await rt.db.query<{ doc: Instance }>(
    `SELECT doc FROM rm_instances WHERE ${where.join(' AND ')} ORDER BY created_at, id LIMIT $${params.push(limit)} OFFSET $${params.push(offset)}`,
    params,
  );
  return rows.map((r) => r.doc);
}

export async function instancesOnHost(rt: Runtime, caller: Caller, hostId: string): Promise<Instance[]> {
  return instancesPage(rt, caller, { hostId }, 10_000, 0);
}

export async function hostById(rt: Runtime, id: string): Promise<Host | null> {
  const [row] = await rt.db.query<{ doc: Host }>('SELECT doc FROM rm_hosts WHERE id = $1', [id]);
  return row?.doc ?? null;
}

export async function allHosts(rt: Runtime): Promise<Host[]> {
  return (await rt.db.query<{ doc: Host }>('SELECT doc FROM rm_hosts ORDER BY name, id')).map((r) => r.doc);
}

interface FlavorRow {
  id: string;
  name: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
}
const flavor = (r: FlavorRow): Flavor => ({ id: r.id, name: r.name, vcpus: r.vcpus, memoryMb: r.memory_mb, diskGb: r.disk_gb });

export async function allFlavors(rt: Runtime): Promise<Flavor[]> {
  return (await rt.db.query<FlavorRow>('SELECT * FROM rm_flavors ORDER BY vcpus, memory_mb, name')).map(flavor);
}

export async function flavorById(rt: Runtime, id: string): Promise<Flavor | null> {
  const [row] = await rt.db.query<FlavorRow>('SELECT * FROM rm_flavors WHERE id = $1', [id]);
  return row ? flavor(row) : null;
}

interface ImageRow {
  id: string;
  name: string;
  format: Image['format'];
  size_bytes: string;
  checksum: string | null;
  status: Image['status'];
}
const image = (r: ImageRow): Image => ({
  id: r.id,
  name: r.name,
  format: r.format,
  sizeBytes: Number(r.size_bytes),
  ...(r.checksum ? { checksum: r.checksum } : {}),
  status: r.status,
});

export async function allImages(rt: Runtime): Promise<Image[]> {
  return (await rt.db.query<ImageRow>('SELECT * FROM rm_images ORDER BY name, id')).map(image);
}

export async function imageById(rt: Runtime, id: string): Promise<Image | null> {
  const [row] = await rt.db.query<ImageRow>('SELECT * FROM rm_images WHERE id = $1', [id]);
  return row ? image(row) : null;
}

export async function operationById(rt: Runtime, caller: Caller, id: string): Promise<Operation | null> {
  const [row] = await rt.db.query<{ doc: Operation }>('SELECT doc FROM rm_operations WHERE id = $1', [id]);
  return row && canRead(caller, row.doc.projectId) ? row.doc : null;
}

export interface OperationFilter {
  status?: string | null;
  kind?: string | null;
  resourceId?: string | null;
}

/** Newest first. */
export async function operationsPage(rt: Runtime, caller: Caller, filter: OperationFilter, limit: number, offset: number): Promise<Operation[]> {
  const params: unknown[] = [];
  const where = [projectScope(caller, 'project_id', params)];
  if (filter.status) where.push(`status = $${params.push(filter.status)}`);
  if (filter.kind) where.push(`kind = $${params.push(filter.kind)}`);
  if (filter.resourceId) where.push(`resource_id = $${params.push(filter.resourceId)}`);
  const rows = await rt.db.query<{ doc: Operation }>(
    `SELECT doc FROM rm_operations WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id LIMIT $${params.push(limit)} OFFSET $${params.push(offset)}`,
    params,
  );
  return rows.map((r) => r.doc);
}

/** A stream's audit log, oldest first, after a position; only what the caller may see. */
export async function eventsOfStream(rt: Runtime, caller: Caller, streamId: string, after: string | null, first: number): Promise<AuditEvent[]> {
  const params: unknown[] = [streamId, after ?? '0'];
  const scope = isAdmin(caller) ? 'TRUE' : `project_id = $${params.push(caller.projectId)}`;
  const rows = await rt.db.query<AuditRow>(
    // rm_audit.position, not the text alias `position` in AUDIT_COLUMNS: ordered as text, "10" sorts before "9".
    `SELECT ${AUDIT_COLUMNS} FROM rm_audit WHERE stream_id = $1 AND rm_audit.position > $2::bigint AND ${scope}
     ORDER BY rm_audit.position LIMIT $${params.push(first)}`,
    params,
  );
  return rows.map(auditEvent);
}

export async function auditEventAt(rt: Runtime, position: string): Promise<AuditEvent | null> {
  const [row] = await rt.db.query<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM rm_audit WHERE position = $1::bigint`, [position]);
  return row ? auditEvent(row) : null;
}

export async function projectById(rt: Runtime, id: string): Promise<{ id: string; name: string } | null> {
  const [row] = await rt.db.query<{ id: string; name: string }>('SELECT id, name FROM rm_projects WHERE id = $1', [id]);
  return row ?? null;
}
