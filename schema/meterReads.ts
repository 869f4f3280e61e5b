import { canRead, type Caller } from '../domain/identity.js';
import { meterUnits, type MetersQuery, type Sample } from '../domain/meters.js';
import type { Runtime } from '../server/runtime.js';

/**
 * An instance's samples of one meter in [from, to): the raw ones still kept, and the hourly averages
 * (stamped at their hour) where the raw ones have been folded away. Another project's instance has no
 * samples for the caller, exactly like one that does not exist.
 */
export async function metersFor(rt: Runtime, caller: Caller, q: MetersQuery): Promise<Sample[]> {
  const [owner] = await rt.db.query<{ project_id: string }>('SELECT project_id FROM rm_instances WHERE id = $1', [q.resourceId]);
  if (!owner || !canRead(caller, owner.project_id)) return [];
  const rows = await rt.db.query<{ at: Date; value: number; unit: string }>(
    `SELECT hour AS at, value, unit FROM meter_samples_hourly WHERE resource_id = $1 AND meter = $2 AND hour >= $3 AND hour < $4
     UNION ALL
     SELECT at, value, unit FROM meter_samples WHERE resource_id = $1 AND meter = $2 AND at >= $3 AND at < $4
     ORDER BY at`,
    [q.resourceId, q.meter, q.from, q.to],
  );
  return rows.map((r) => ({ meter: q.meter, resourceId: q.resourceId, timestamp: r.at.toISOString(), value: r.value, unit: r.unit ?? meterUnits[q.meter] }));
}

/** The newest sample of every instance and meter, for /metrics. */
export async function latestSamples(rt: Pick<Runtime, 'db'>): Promise<{ resourceId: string; projectId: string; meter: string; value: number }[]> {
  const rows = await rt.db.query<{ resource_id: string; project_id: string; meter: string; value: number }>(
    `SELECT DISTINCT ON (resource_id, meter) resource_id, project_id, meter, value FROM meter_samples
      WHERE at > now() - interval '1 hour' ORDER BY resource_id, meter, at DESC`,
  );
  return rows.map((r) => ({ resourceId: r.resource_id, projectId: r.project_id, meter: r.meter, value: r.value }));
}
