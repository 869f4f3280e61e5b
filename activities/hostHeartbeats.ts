import type { Migration } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';

/**
 * The last time each host's agent answered. Kept in one row per host, overwritten, not as events: a
 * heartbeat every few seconds from every host would be most of the log and says nothing new (Nova's
 * service heartbeat is likewise an `updated_at` column). What matters, the host turning DOWN or UP, is
 * an event. The table is operational status, not a projection: rebuilding the read model does not
 * (and need not) restore it; the next heartbeat does.
 */
export const hostHeartbeatMigrations: Migration[] = [
  {
    // Made once at start-up (migrations run under a lock): made lazily by the first heartbeat, 1,000
    // health checks starting at once raced on CREATE TABLE IF NOT EXISTS and failed their workflows.
    id: 'activities/host-heartbeats/001',
    sql: 'CREATE TABLE IF NOT EXISTS host_heartbeats (host_id uuid PRIMARY KEY, last_heartbeat_at timestamptz NOT NULL)',
  },
];

export async function recordHeartbeat(rt: Pick<Runtime, 'db'>, hostId: string, at: Date): Promise<void> {
  await rt.db.query(
    `INSERT INTO host_heartbeats (host_id, last_heartbeat_at) VALUES ($1, $2)
     ON CONFLICT (host_id) DO UPDATE SET last_heartbeat_at = GREATEST(host_heartbeats.last_heartbeat_at, EXCLUDED.last_heartbeat_at)`,
    [hostId, at.toISOString()],
  );
}

/** When the host last answered, or null (never, or health checks are off). */
export async function lastHeartbeatOf(rt: Pick<Runtime, 'db'>, hostId: string): Promise<string | null> {
  const [row] = await rt.db.query<{ at: string | Date }>('SELECT last_heartbeat_at AS at FROM host_heartbeats WHERE host_id = $1', [hostId]);
  return row ? new Date(row.at).toISOString() : null;
}
