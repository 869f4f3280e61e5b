import { setTimeout as sleep } from 'node:timers/promises';
import { StratusError } from '../domain/errors.js';
import { checkpointOf, compareCheckpoints, START, type Checkpoint } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { readCheckpoint, resetCheckpoint, writeCheckpoint } from './checkpoints.js';
import { migrateProjections, projectionNamed, projectionNames } from './registry.js';
import { readsStream, RESET_CHANNEL } from './projection.js';

/**
 * Empties a projection's tables and replays the whole log into them, in ONE transaction: readers keep
 * seeing the old rows until the new ones commit, and the checkpoint row, locked first, holds a live
 * runner (in any process) until then; its generation changed, so that runner drops the event it held
 * and restarts from the rebuilt checkpoint (the NOTIFY wakes it at once). Resolves with the checkpoint
 * the rebuild reached. The price of one transaction: the global feed waits while it runs.
 */
export async function rebuildProjection(rt: Runtime, name: string): Promise<{ name: string; checkpoint: Checkpoint; events: number }> {
  const projection = projectionNamed(name);
  await migrateProjections(rt.db);
  const result = await rt.db.transaction(async (tx) => {
    await resetCheckpoint(tx, name);
    for (const table of projection.tables) await tx.query(`DELETE FROM ${table}`);
    let after = START;
    let events = 0;
    const session: Record<string, unknown> = {};
    for (;;) {
      const page = await rt.store.readAll({ after, limit: 1000, tx });
      if (projection.applyBatch) {
        if (page.length > 0) await projection.applyBatch(tx, page.filter((event) => readsStream(projection, event)), session);
        if (page.length > 0) after = checkpointOf(page.at(-1)!);
      } else {
        for (const event of page) {
          await projection.apply(tx, event);
          after = checkpointOf(event);
        }
      }
      events += page.length;
      if (page.length < 1000) break;
    }
    await projection.finishRebuild?.(tx, session);
    await writeCheckpoint(tx, name, after);
    return { name, checkpoint: after, events };
  });
  await rt.db.notify(RESET_CHANNEL, name);
  return result;
}

/** The newest event in the log (committed and visible to this snapshot). */
async function headOfLog(rt: Runtime): Promise<Checkpoint> {
  const [row] = await rt.db.query<{ transaction_id: string; position: string }>(
    // ORDER BY the xid8 column itself: a bare name would sort by the text output column of the same name.
    'SELECT e.transaction_id::text AS transaction_id, e.position::text AS position FROM events e ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1',
  );
  return row ? { transactionId: row.transaction_id, position: row.position } : START;
}

/**
 * Resolves once each named projection (all by default) has applied `upTo` (an appended event, or the
 * head of the log when omitted): read-your-writes for a caller that just appended. The projections must
 * be running somewhere; after `timeoutMs` it fails rather than hang.
 */
export async function waitForProjections(
  rt: Runtime,
  upTo?: Pick<Checkpoint, 'transactionId' | 'position'>,
  options: { names?: readonly string[]; timeoutMs?: number } = {},
): Promise<void> {
  const target = upTo ? checkpointOf(upTo) : await headOfLog(rt);
  const names = options.names ?? projectionNames;
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
    const behind: string[] = [];
    for (const name of names) {
      const { checkpoint } = await readCheckpoint(rt.db, name);
      if (compareCheckpoints(checkpoint, target) < 0) behind.push(name);
    }
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      throw new StratusError('INTERNAL', `projections ${behind.join(', ')} did not reach the log position in time`, { behind });
    }
    await sleep(pause);
  }
}
