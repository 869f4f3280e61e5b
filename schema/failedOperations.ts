import { z } from 'zod';
import type { Operation } from '../domain/operation.js';
import { Id } from '../domain/scalars.js';
import type { Runtime } from '../server/runtime.js';
import type { ChangeFeed } from './changeFeed.js';

export const FailedOperationsArgs = z.object({ first: z.number().int().min(1).max(1000).default(100), after: Id.optional() });

/**
 * FAILED operations, newest first, after the operation `after` (keyset on created_at, id: a page does
 * not shift when new failures land at the top, as an offset would). Admin only: the caller is checked
 * by the field's auth scope, and every project's failures are the operator's to see.
 */
export async function failedOperationsPage(rt: Runtime, first: number, after: string | null): Promise<Operation[]> {
  const params: unknown[] = [first];
  const cursor = after
    ? `AND (created_at, id) < (SELECT created_at, id FROM rm_operations WHERE id = $${params.push(after)}::uuid)`
    : '';
  const rows = await rt.db.query<{ doc: Operation }>(
    `SELECT doc FROM rm_operations WHERE status = 'FAILED' ${cursor} ORDER BY created_at DESC, id DESC LIMIT $1`,
    params,
  );
  return rows.map((r) => r.doc);
}

/**
 * The operations that fail from now on. A failed operation's stream changes again only when it runs
 * again (a retry, a reset, a held run undoing its steps), so it is yielded once per time it is recorded
 * FAILED (told apart by finishedAt), not once per change notification.
 */
export function failedOperationsFeed(changes: ChangeFeed, load: (id: string) => Promise<Operation | null>): AsyncIterableIterator<Operation> {
  const yielded = new Map<string, string | null>();
  return changes.follow(
    (c) => c.kind === 'operation',
    async (c) => {
      const op = await load(c.id);
      if (!op || op.status !== 'FAILED' || yielded.get(op.id) === op.finishedAt) return null;
      yielded.set(op.id, op.finishedAt);
      return op;
    },
  );
}
