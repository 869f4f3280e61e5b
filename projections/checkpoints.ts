import { checkpointFromString, checkpointToString, START, type Checkpoint, type Migration, type Queryable } from '../eventstore/index.js';

/**
 * One row per projection: the last event it applied, and a generation that a rebuild bumps. A runner
 * remembers the generation it started from and applies nothing once it changed, so a rebuild in another
 * process can never be overwritten by a runner that was mid-event.
 */
export const checkpointMigrations: Migration[] = [
  {
    id: 'projections/001-checkpoints',
    sql: `CREATE TABLE projection_checkpoints (
      name text PRIMARY KEY,
      checkpoint text,
      generation integer NOT NULL DEFAULT 0
    )`,
  },
];

export interface StoredCheckpoint {
  checkpoint: Checkpoint;
  generation: number;
}

/** The projection's stored position, creating its row on first use. `lock` holds the row until the transaction ends. */
export async function readCheckpoint(tx: Queryable, name: string, lock = false): Promise<StoredCheckpoint> {
  const select = () =>
    tx.query<{ checkpoint: string | null; generation: number }>(`SELECT checkpoint, generation FROM projection_checkpoints WHERE name = $1${lock ? ' FOR UPDATE' : ''}`, [
      name,
    ]);
  // The row exists after a projection's first page: one query then, not an insert attempt every time.
  let [row] = await select();
  if (!row) {
    await tx.query('INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [name]);
    [row] = await select();
  }
  return { checkpoint: row?.checkpoint ? checkpointFromString(row.checkpoint) : START, generation: row?.generation ?? 0 };
}

export async function writeCheckpoint(tx: Queryable, name: string, checkpoint: Checkpoint): Promise<void> {
  await tx.query('UPDATE projection_checkpoints SET checkpoint = $2 WHERE name = $1', [name, checkpointToString(checkpoint)]);
}

/** Starts the projection over: no checkpoint, next generation. Locks the row, so runners wait for the rebuild. */
export async function resetCheckpoint(tx: Queryable, name: string): Promise<number> {
  const [row] = await tx.query<{ generation: number }>(
    `INSERT INTO projection_checkpoints (name, checkpoint, generation) VALUES ($1, NULL, 1)
     ON CONFLICT (name) DO UPDATE SET checkpoint = NULL, generation = projection_checkpoints.generation + 1
     RETURNING generation`,
    [name],
  );
  return row!.generation;
}
