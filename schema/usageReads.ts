import { canRead, isAdmin, type Caller } from '../domain/identity.js';
import type { Price } from '../domain/priceSheet.js';
import { usageReport, type UsageQuery, type UsageReport } from '../domain/rating.js';
import type { UsageRecord, UsageType, UsageUnit } from '../domain/usage.js';
import type { Queryable } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { projectById } from './readModel.js';

/** The metering consumer's tables (projections/usage.ts) as the API reads them; tenancy applied here. */

interface RecordRow {
  resource_id: string;
  usage_type: UsageType;
  start_at: Date;
  end_at: Date;
  resource_type: string;
  project_id: string;
  size: number;
  flavor_id: string | null;
  quantity: number;
  unit: UsageUnit;
}

const recordOf = (r: RecordRow): UsageRecord => ({
  resourceId: r.resource_id,
  usageType: r.usage_type,
  start: r.start_at.toISOString(),
  end: r.end_at.toISOString(),
  resourceType: r.resource_type,
  projectId: r.project_id,
  size: r.size,
  flavorId: r.flavor_id,
  quantity: r.quantity,
  unit: r.unit,
});

export async function usageRecords(db: Queryable, projectId: string, from: string, to: string): Promise<UsageRecord[]> {
  const rows = await db.query<RecordRow>(
    `SELECT * FROM usage_records WHERE project_id = $1 AND start_at < $3 AND end_at > $2
      ORDER BY start_at, resource_id, usage_type`,
    [projectId, from, to],
  );
  return rows.map(recordOf);
}

export async function priceSheet(db: Queryable): Promise<Price[]> {
  const rows = await db.query<{ usage_type: UsageType; flavor_id: string | null; unit_price: number; currency: string; effective_from: Date }>(
    'SELECT * FROM usage_prices ORDER BY position',
  );
  return rows.map((r) => ({ usageType: r.usage_type, flavorId: r.flavor_id, unitPrice: r.unit_price, currency: r.currency, effectiveFrom: r.effective_from.toISOString() }));
}

/**
 * A project's priced usage. A member reads its own project's (the default); another project's, like
 * one that does not exist, is null.
 */
export async function usageFor(rt: Runtime, caller: Caller, query: UsageQuery): Promise<UsageReport | null> {
  const projectId = query.projectId ?? caller.projectId;
  if (!canRead(caller, projectId)) return null;
  if (isAdmin(caller) && projectId !== caller.projectId && !(await projectById(rt, projectId))) return null;
  const [records, prices] = await Promise.all([usageRecords(rt.db, projectId, query.from, query.to), priceSheet(rt.db)]);
  return usageReport(projectId, query.from, query.to, records, prices);
}

/** One record by its key (projections/usage.ts `usageRecordKey`), if the caller may see its project. */
export async function usageRecordByKey(rt: Runtime, caller: Caller, key: string): Promise<UsageRecord | null> {
  const [resourceId, usageType, start] = key.split('|');
  const [row] = await rt.db.query<RecordRow>('SELECT * FROM usage_records WHERE resource_id = $1 AND usage_type = $2 AND start_at = $3', [
    resourceId,
    usageType,
    start,
  ]);
  return row && canRead(caller, row.project_id) ? recordOf(row) : null;
}
