import { canRead, isAdmin, type Caller } from '../domain/identity.js';
import type { Volume } from '../domain/volume.js';
import type { Runtime } from '../server/runtime.js';

/** The API's reads of rm_volumes; another project's volume is simply not there for the caller. */

export async function volumeById(rt: Runtime, caller: Caller, id: string): Promise<Volume | null> {
  const [row] = await rt.db.query<{ doc: Volume }>('SELECT doc FROM rm_volumes WHERE id = $1', [id]);
  return row && canRead(caller, row.doc.projectId) ? row.doc : null;
}

/** The caller's volumes (an admin's: all), oldest first; deleted ones are history and not listed. */
export async function volumesOf(rt: Runtime, caller: Caller): Promise<Volume[]> {
  const params: unknown[] = [];
  const scope = isAdmin(caller) ? 'TRUE' : `project_id = $${params.push(caller.projectId)}`;
  const rows = await rt.db.query<{ doc: Volume }>(`SELECT doc FROM rm_volumes WHERE ${scope} AND state <> 'DELETED' ORDER BY created_at, id`, params);
  return rows.map((r) => r.doc);
}

export async function volumesAttachedTo(rt: Runtime, caller: Caller, instanceId: string): Promise<Volume[]> {
  const rows = await rt.db.query<{ doc: Volume }>('SELECT doc FROM rm_volumes WHERE attached_to = $1 ORDER BY created_at, id', [instanceId]);
  return rows.map((r) => r.doc).filter((v) => canRead(caller, v.projectId));
}
