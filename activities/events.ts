import type { DomainEvent } from '../domain/events.js';
import { nameBasedUuid } from '../domain/nameBasedId.js';
import { WrongExpectedVersion, type EventMetadata, type Migration, type Queryable } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';

/**
 * Event ids on the write side are name-based: the same logical write (operation, attempt, step, phase)
 * always carries the same ids, so an activity retried after its append committed, or a command repeated by
 * a racing twin, stores nothing twice (DESIGN.md invariant 3). Never change this namespace.
 */
const EVENT_ID_NAMESPACE = 'c2b7a8f4-3f0e-4d55-8a8e-5b7f2a9e1c03';
export const eventIdFor = (key: string, index: number): string => nameBasedUuid(EVENT_ID_NAMESPACE, `${key}#${index}`);

/** A stream folded to its current state, and the version the next append must expect (0: no stream). */
export interface Folded<S> {
  state: S;
  version: number;
}

/** The pure half of a decider that reading needs. */
export interface Fold<S, E> {
  evolve: (state: S, event: E) => S;
  initialState: () => S;
  /**
   * Names the fold's snapshots (`stream_snapshots`) for a stream that grows long, such as a network's
   * allocations: a read folds only the events past the snapshot. Change the name whenever `evolve`
   * changes meaning, so snapshots folded by older code are never used.
   */
  snapshotName?: string;
}

/** Events past its snapshot after which a read stores a new one. */
const SNAPSHOT_EVERY = 25;

/**
 * Snapshots are a cache of folds, never a second truth: a snapshot is the fold of the stream's events up
 * to its version, written by whichever read folded that far, and a read still folds every event past it.
 * Dropping the table loses nothing but time.
 */
export const streamSnapshotMigrations: Migration[] = [
  {
    id: 'activities/stream-snapshots/001',
    sql: `CREATE TABLE stream_snapshots (
      stream_id text NOT NULL,
      fold text NOT NULL,
      version integer NOT NULL,
      -- json, not jsonb: the state comes back with its keys in the order the fold made them.
      state json NOT NULL,
      PRIMARY KEY (stream_id, fold)
    );`,
  },
];

export async function readFolded<S, E extends DomainEvent>(
  rt: Pick<Runtime, 'store'>,
  streamId: string,
  fold: Fold<S, E>,
  tx?: Queryable,
): Promise<Folded<S>> {
  const q = tx ?? rt.store.database;
  let state = fold.initialState();
  let version = 0;
  if (fold.snapshotName) {
    const [row] = await q.query<{ version: number; state: S }>('SELECT version, state FROM stream_snapshots WHERE stream_id = $1 AND fold = $2', [
      streamId,
      fold.snapshotName,
    ]);
    if (row) ({ state, version } = row);
  }
  const events = await rt.store.readStream(streamId, { fromVersion: version + 1, ...(tx ? { tx } : {}) });
  for (const e of events) state = fold.evolve(state, { type: e.type, data: e.data } as E);
  const folded = { state, version: events.at(-1)?.version ?? version };
  if (fold.snapshotName && events.length >= SNAPSHOT_EVERY) {
    await q.query(
      `INSERT INTO stream_snapshots (stream_id, fold, version, state) VALUES ($1, $2, $3, $4::json)
       ON CONFLICT (stream_id, fold) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state
       WHERE stream_snapshots.version < EXCLUDED.version`,
      [streamId, fold.snapshotName, folded.version, JSON.stringify(folded.state)],
    );
  }
  return folded;
}

export interface DecideOptions<S> {
  /** Names this write: event ids derive from it, so the same key must always mean the same write. */
  key: string;
  metadata: EventMetadata;
  tx?: Queryable;
  /** A state already read (e.g. by the previous write of the same activity); re-read on a version conflict. */
  known?: Folded<S>;
  /** Rounds of read-decide-append before a version conflict is given up on (then the caller's retry policy takes over). */
  rounds?: number;
}

/**
 * Read, decide, append with the version read expected, and on a concurrent change start over: the
 * decider sees the newest state every time, so the rule it enforces (capacity, one task at a time) holds
 * however many writers race (invariant 4). A decision of no events writes nothing.
 */
export async function decideAndAppend<S, E extends DomainEvent>(
  rt: Pick<Runtime, 'store'>,
  streamId: string,
  fold: Fold<S, E>,
  decide: (state: S) => E[],
  options: DecideOptions<S>,
): Promise<Folded<S> & { appended: E[] }> {
  let known = options.known;
  const rounds = options.rounds ?? 5;
  for (let round = 1; ; round++) {
    const current = known ?? (await readFolded(rt, streamId, fold, options.tx));
    const events = decide(current.state);
    if (events.length === 0) return { ...current, appended: [] };
    try {
      const result = await rt.store.append(
        streamId,
        events.map((e, i) => ({ id: eventIdFor(options.key, i), type: e.type, data: e.data, metadata: options.metadata }) as never),
        { expectedVersion: current.version === 0 ? 'noStream' : current.version, ...(options.tx ? { tx: options.tx } : {}) },
      );
      // A retried write that was already stored: the stream may have moved on since, so read what it is now.
      if (result.duplicate) return { ...(await readFolded(rt, streamId, fold, options.tx)), appended: [] };
      return { state: events.reduce(fold.evolve, current.state), version: result.streamVersion, appended: events };
    } catch (e) {
      if (!(e instanceof WrongExpectedVersion) || round >= rounds) throw e;
      known = undefined;
    }
  }
}

/** Event metadata for a write on behalf of an operation. */
export function operationMetadata(op: { operationId: string; actor: string; workflowId?: string; runId?: string }): EventMetadata {
  return {
    actor: op.actor,
    operationId: op.operationId,
    ...(op.workflowId ? { workflowId: op.workflowId } : {}),
    ...(op.runId ? { runId: op.runId } : {}),
  };
}
