import type { Runtime } from '../server/runtime.js';

/**
 * The last time each host's agent answered. Kept in one row per host, overwritten, not as events: a
 * heartbeat every few seconds from every host would be most of the log and says nothing new (Nova's
 * service heartbeat is likewise an `updated_at` column). What matters, the host turning DOWN or UP, is
 * an event. The table is operational status, not a projection: rebuilding the read model does not
 * (and need not) restore it; the next heartbeat does.
 */
const ready = new WeakSet<object>();

async function ensureTable(rt: Pick<Runtime, 'db'>): Promise<void> {
  if (ready.has(rt.db)) return;
  await rt.db.query(`CREATE TABLE IF NOT EXISTS host_heartbeats (host_id uuid PRIMARY KEY, last_heartbeat_at timestamptz NOT NULL)`);
  ready.add(rt.db);
}

export async function recordHeartbeat(rt: Pick<Runtime, 'db'>, hostId: string, at: Date): Promise<void> {
  await ensureTable(rt);
  await rt.db.query(
    `INSERT INTO host_heartbeats (host_id, last_heartbeat_at) VALUES ($1, $2)
     ON CONFLICT (host_id) DO UPDATE SET last_heartbeat_at = GREATEST(host_heartbeats.last_heartbeat_at, EXCLUDED.last_heartbeat_at)`,
    [hostId, at.toISOString()],
  );
}

/** When the host last answered, or null (never, or health checks are off). */
export async function lastHeartbeatOf(rt: Pick<Runtime, 'db'>, hostId: string): Promise<string | null> {
  const [present] = await rt.db.query<{ present: boolean }>(`SELECT to_regclass('host_heartbeats') IS NOT NULL AS present`);
  if (!present?.present) return null;
  const [row] = await rt.db.query<{ at: string | Date }>('SELECT last_heartbeat_at AS at FROM host_heartbeats WHERE host_id = $1', [hostId]);
  return row ? new Date(row.at).toISOString() : null;
}
