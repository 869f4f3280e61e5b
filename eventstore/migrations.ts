import { z } from 'zod';
import type { Database } from './database.js';

/**
 * One schema change. `id` is global and never reused ("eventstore/001-events", "projections/instances/001"),
 * so every module registers its own migrations through `migrate` and they share one ledger.
 */
export const Migration = z.object({
  id: z.string().min(1),
  sql: z.string().min(1),
});
export type Migration = z.infer<typeof Migration>;

// Any fixed 64-bit key; it only has to differ from the other advisory locks Stratus takes.
const MIGRATION_LOCK_KEY = 7_261_003_311;

/**
 * Applies the migrations not yet recorded, in the order given, and records them. Safe to run on every
 * start and from several processes at once: the whole run is one transaction holding an advisory lock,
 * so a second process waits, then finds everything applied. DDL is transactional in PostgreSQL, so a
 * failing migration leaves neither its changes nor its ledger row.
 */
export async function migrate(db: Database, migrations: readonly Migration[]): Promise<string[]> {
  const list = migrations.map((m) => Migration.parse(m));
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    // Created under the lock: two concurrent CREATE TABLE IF NOT EXISTS can still collide on pg_type.
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const applied = new Set(
      (await tx.query<{ id: string }>('SELECT id FROM schema_migrations WHERE id = ANY($1::text[])', [list.map((m) => m.id)])).map(
        (r) => r.id,
      ),
    );
    const ran: string[] = [];
    for (const m of list) {
      if (applied.has(m.id)) continue;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (id) VALUES ($1)', [m.id]);
      ran.push(m.id);
    }
    return ran;
  });
}
