import type { eventRegistry } from '../domain/events.js';
import type { Migration, Queryable, TypedEvent } from '../eventstore/index.js';

/** Every stored domain event, typed by the registry. */
export type StratusEvent = TypedEvent<typeof eventRegistry>;

/** The channel a projection notifies after each commit; the API's subscriptions listen to it (any process). */
export const CHANGES_CHANNEL = 'stratus_changes';

/** The channel `rebuildProjection` notifies so a live runner (in any process) restarts from the new checkpoint. */
export const RESET_CHANNEL = 'stratus_projection_reset';

/**
 * What changed in the read model, sent as the NOTIFY payload. Small on purpose (NOTIFY payloads are
 * capped at 8000 bytes): listeners load the row itself, and check tenancy on `projectId`.
 */
export interface Change {
  kind: 'instance' | 'operation' | 'host' | 'event' | 'flavor' | 'image' | 'project' | 'token' | 'usage' | 'volume' | 'network' | 'address' | 'securityGroup';
  id: string;
  /** The owning project, or null for resources outside any project (hosts, flavors, images). */
  projectId: string | null;
  streamId?: string;
  position?: string;
}

/**
 * One read-model projection: its tables (created by its migrations) and how one event changes them.
 * `apply` runs inside the transaction that also stores the projection's checkpoint, so rows and
 * checkpoint commit together (DESIGN.md invariant 6). It must be deterministic in the event alone
 * (no `now()`, no random ids), so a rebuild from the log ends identical.
 */
export interface Projection {
  name: string;
  migrations: Migration[];
  /** Its tables, emptied by a rebuild (children before parents). */
  tables: string[];
  /**
   * The streams whose events can change it (`instance-`, ...); absent: every stream. The runner skips
   * the others without a transaction, so six projections do not cost six transactions per event.
   */
  streamPrefixes?: readonly string[];
  apply(tx: Queryable, event: StratusEvent): Promise<Change[]>;
  /**
   * The same as `apply` over many events at once, for a projection that folds a page in memory; a
   * rebuild uses it, passing one `rebuild` object through all its pages (the projection may keep state
   * there, starting from its emptied tables) and then to `finishRebuild`, in the same transaction.
   */
  applyBatch?(tx: Queryable, events: readonly StratusEvent[], rebuild?: Record<string, unknown>): Promise<Change[]>;
  finishRebuild?(tx: Queryable, rebuild: Record<string, unknown>): Promise<void>;
}

/** Inserts `row` or replaces every column of the row with the same key. Column names are ours, never user input. */
export async function upsertRow(tx: Queryable, table: string, row: Record<string, unknown>, key = 'id'): Promise<void> {
  const columns = Object.keys(row);
  const updates = columns.filter((c) => c !== key).map((c) => `${c} = EXCLUDED.${c}`);
  await tx.query(
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})
     ON CONFLICT (${key}) DO ${updates.length > 0 ? `UPDATE SET ${updates.join(', ')}` : 'NOTHING'}`,
    columns.map((c) => row[c]),
  );
}

/** The domain state a projection keeps beside its columns, so the next event can be folded with the domain's evolve. */
export async function loadDoc<T>(tx: Queryable, table: string, id: string): Promise<T | null> {
  const [row] = await tx.query<{ doc: T }>(`SELECT doc FROM ${table} WHERE id = $1`, [id]);
  return row?.doc ?? null;
}

/** Whether `event` is in a stream the projection reads. */
export const readsStream = (projection: Projection, event: StratusEvent): boolean =>
  !projection.streamPrefixes || projection.streamPrefixes.some((prefix) => event.streamId.startsWith(prefix));
