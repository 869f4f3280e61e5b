import { Id } from '../domain/scalars.js';
import { samplesOf, type Sample } from '../domain/meters.js';
import type { Queryable } from '../eventstore/index.js';
import { RAW_RETENTION_MS } from '../projections/meterTables.js';
import { componentLog } from '../server/log.js';
import type { Runtime } from '../server/runtime.js';
import { callAgent } from './agentCalls.js';

const log = componentLog('meters');

// Any fixed key distinct from Stratus's other advisory locks: one downsampling at a time.
const DOWNSAMPLE_LOCK = 7_261_012_001;

/**
 * Folds raw samples older than `cutoff` into the hourly averages (merged, weighted by count, into an
 * hour that already has some) and deletes them, in one statement: the rows averaged are exactly the
 * rows deleted, so a sample stored while it runs is neither lost nor counted twice.
 */
export async function downsampleMeters(db: Pick<Runtime['db'], 'transaction'>, cutoff: Date): Promise<number> {
  return db.transaction(async (tx: Queryable) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [DOWNSAMPLE_LOCK]);
    const [row] = await tx.query<{ n: number }>(
      `WITH moved AS (DELETE FROM meter_samples WHERE at < $1 RETURNING resource_id, project_id, meter, at, value, unit),
       folded AS (
         INSERT INTO meter_samples_hourly (resource_id, project_id, meter, hour, value, samples, unit)
         SELECT resource_id, project_id, meter, date_trunc('hour', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', avg(value), count(*), min(unit)
           FROM moved GROUP BY 1, 2, 3, 4
         ON CONFLICT (resource_id, meter, hour) DO UPDATE SET
           value = (meter_samples_hourly.value * meter_samples_hourly.samples + EXCLUDED.value * EXCLUDED.samples)
                   / (meter_samples_hourly.samples + EXCLUDED.samples),
           samples = meter_samples_hourly.samples + EXCLUDED.samples
       )
       SELECT count(*)::int AS n FROM moved`,
      [cutoff],
    );
    return row?.n ?? 0;
  });
}

/** Stores one round of samples in one statement; a repeated round (a retried activity) stores nothing twice. */
export async function storeSamples(db: Queryable, rows: (Sample & { projectId: string })[]): Promise<void> {
  await db.query(
    `INSERT INTO meter_samples (resource_id, project_id, meter, at, value, unit)
     SELECT x."resourceId", x."projectId", x.meter, x.timestamp, x.value, x.unit
       FROM jsonb_to_recordset($1::jsonb) AS x("resourceId" uuid, "projectId" uuid, meter text, timestamp timestamptz, value float8, unit text)
     ON CONFLICT DO NOTHING`,
    [JSON.stringify(rows)],
  );
}

/** The pollster's step (workflows/pollHostMeters.ts): one reading of every VM on a host, stored as samples. */
export function meterSteps(rt: Runtime) {
  return {
    async sampleHost(hostId: string): Promise<{ vms: number; samples: number }> {
      let readings;
      try {
        readings = (await callAgent(rt, hostId, 'sampleVms', {}, { timeoutMs: 30_000 })).samples;
      } catch (e) {
        // A host that does not answer misses this round; whether it is down is the health check's call.
        log.warn({ err: e, hostId }, 'could not sample the VMs of a host');
        return { vms: 0, samples: 0 };
      }
      // Only Stratus's own VMs carry the instance and project they belong to.
      const owned = readings.filter((r) => Id.safeParse(r.labels.instanceId).success && Id.safeParse(r.labels.projectId).success);
      if (owned.length === 0) return { vms: 0, samples: 0 };
      const previous = await rt.db.query<{ resource_id: string; at: Date; value: number }>(
        `SELECT DISTINCT ON (resource_id) resource_id, at, value FROM meter_samples
          WHERE meter = 'cpu' AND resource_id = ANY($1::uuid[]) ORDER BY resource_id, at DESC`,
        [owned.map((r) => r.labels.instanceId)],
      );
      const prev = new Map(previous.map((p) => [p.resource_id, { at: p.at.toISOString(), cpuNs: p.value }]));
      const rows = owned.flatMap((r) =>
        samplesOf(r.labels.instanceId!, r, prev.get(r.labels.instanceId!)).map((s) => ({ ...s, projectId: r.labels.projectId! })),
      );
      await storeSamples(rt.db, rows);
      await downsampleMeters(rt.db, new Date(Date.now() - RAW_RETENTION_MS));
      return { vms: owned.length, samples: rows.length };
    },
  };
}
