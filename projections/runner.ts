import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { checkpointOf, compareCheckpoints, type Checkpoint, type Subscription } from '../eventstore/index.js';
import { componentLog } from '../server/log.js';
import type { Runtime } from '../server/runtime.js';
import { readCheckpoint, writeCheckpoint } from './checkpoints.js';
import { CHANGES_CHANNEL, readsStream, RESET_CHANNEL, type Change, type Projection, type StratusEvent } from './projection.js';
import { migrateProjections, projectionNamed, projectionNames } from './registry.js';

const log = componentLog('projections');

// The first key of the two-key advisory lock; the second is the projection name's hash.
const PROJECTION_LOCK_CLASS = 726_1004;

export interface ProjectionRunner {
  /** Resolves once every projection this runner holds has caught up with the log the first time. */
  readonly caughtUp: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Runs the named projections (all by default). Each is active in one process only: on PostgreSQL the
 * runner holds a session advisory lock on a connection of its own (the pool's connections come and go,
 * and a transaction held open for the lock would stall the global feed); another process waits for it
 * and takes over when the holder dies. PGlite is one process, so there is nothing to guard.
 */
export async function startProjections(rt: Runtime, names: readonly string[] = projectionNames): Promise<ProjectionRunner> {
  await migrateProjections(rt.db);
  const runners = names.map((n) => runProjection(rt, projectionNamed(n)));
  const unlisten = await rt.db.listen(RESET_CHANNEL, (name) => {
    for (const r of runners) if (r.name === name) r.restart();
  });
  return {
    caughtUp: Promise.all(runners.map((r) => r.caughtUp)).then(() => {}),
    async stop() {
      await unlisten();
      await Promise.all(runners.map((r) => r.stop()));
    },
  };
}

interface Lock {
  /** False once the lock's connection is gone: another process may hold it now. */
  readonly held: boolean;
  onLost(fn: () => void): void;
  release(): Promise<void>;
}

/** Waits until this process holds `name`'s lock, or `isStopped` says to give up (then undefined). */
async function acquireLock(rt: Runtime, name: string, isStopped: () => boolean): Promise<Lock | undefined> {
  const url = rt.config.databaseUrl;
  if (rt.db.kind === 'pglite' || !url) return { held: true, onLost: () => {}, release: async () => {} };
  while (!isStopped()) {
    const client = new pg.Client({ connectionString: url });
    let held = true;
    let lost = () => {};
    client.on('error', (e) => {
      log.warn({ err: e, projection: name }, 'projection lock connection failed; stepping down');
      held = false;
      lost();
    });
    try {
      await client.connect();
      const [row] = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [PROJECTION_LOCK_CLASS, name]))
        .rows;
      if (row?.ok) {
        return {
          get held() {
            return held;
          },
          onLost: (fn) => (lost = fn),
          release: () => client.end().catch(() => {}),
        };
      }
    } catch (e) {
      log.warn({ err: e, projection: name }, 'could not try the projection lock');
    }
    await client.end().catch(() => {});
    await sleep(1000);
  }
  return undefined;
}

function runProjection(rt: Runtime, projection: Projection) {
  const { name } = projection;
  let stopped = false;
  let current: Subscription | undefined;
  let firstCaughtUp!: () => void;
  const caughtUp = new Promise<void>((resolve) => (firstCaughtUp = resolve));

  /**
   * Events of other streams change nothing, so they cost no transaction each. Their checkpoint is still
   * stored, once things are quiet for 20 ms, so waitForProjections and a restart see the projection current.
   */
  let skippedTo: { checkpoint: Checkpoint; generation: number } | undefined;
  let flushTimer: NodeJS.Timeout | undefined;
  const skipped = (checkpoint: Checkpoint, generation: number) => {
    skippedTo = { checkpoint, generation };
    clearTimeout(flushTimer);
    flushTimer = setTimeout(() => void flushSkipped(), 20);
  };
  const flushSkipped = async () => {
    const pending = skippedTo;
    skippedTo = undefined;
    if (!pending) return;
    await rt.db
      .transaction(async (tx) => {
        const stored = await readCheckpoint(tx, name, true);
        if (stored.generation !== pending.generation || compareCheckpoints(pending.checkpoint, stored.checkpoint) <= 0) return;
        await writeCheckpoint(tx, name, pending.checkpoint);
      })
      .catch((e: unknown) => log.warn({ err: e, projection: name }, 'could not store the checkpoint past skipped events'));
  };

  /**
   * Applies a page of the feed and its checkpoint in one transaction (the page's last event, so the
   * skipped events of other streams move it too); nothing if a rebuild moved the generation on. One
   * transaction per page rather than per event: 32 boots committing at once are a few transactions for
   * each projection, not hundreds.
   */
  const applyPage = async (page: readonly StratusEvent[], generation: number, subscription: () => Subscription | undefined) => {
    const last = page[page.length - 1]!;
    const relevant = page.filter((event) => readsStream(projection, event));
    if (relevant.length === 0) {
      skipped(checkpointOf(last), generation);
      return;
    }
    const outcome = await rt.db.transaction(async (tx): Promise<'applied' | 'reset'> => {
      const stored = await readCheckpoint(tx, name, true);
      if (stored.generation !== generation) return 'reset';
      // Already applied (a second runner after a lost lock, or a rebuild that got further): exactly once.
      const fresh = relevant.filter((event) => compareCheckpoints(checkpointOf(event), stored.checkpoint) > 0);
      const changes = new Map<string, Change>();
      // A projection that can fold the page in memory does so (one read and one write per row it
      // touches, not per event); the others apply event by event.
      if (projection.applyBatch) {
        if (fresh.length > 0) for (const change of await projection.applyBatch(tx, fresh)) changes.set(JSON.stringify(change), change);
      } else for (const event of fresh) for (const change of await projection.apply(tx, event)) changes.set(JSON.stringify(change), change);
      if (compareCheckpoints(checkpointOf(last), stored.checkpoint) > 0) await writeCheckpoint(tx, name, checkpointOf(last));
      // Sent in the transaction, so PostgreSQL delivers them when (and only if) the rows commit; all of
      // the page's in one statement.
      if (changes.size > 0) await tx.query('SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload', [CHANGES_CHANNEL, [...changes.keys()]]);
      return 'applied';
    });
    if (outcome === 'reset') void subscription()?.stop();
  };

  const loop = async () => {
    while (!stopped) {
      const lock = await acquireLock(rt, name, () => stopped);
      if (!lock) return;
      lock.onLost(() => void current?.stop());
      try {
        while (!stopped && lock.held) {
          const { checkpoint, generation } = await readCheckpoint(rt.db, name);
          // The handler runs only after subscribe returns (the first read awaits LISTEN), so `sub` is set by then.
          const sub: Subscription = rt.store.subscribePages({ after: checkpoint }, (page) => applyPage(page, generation, () => sub));
          current = sub;
          void sub.caughtUp.then(firstCaughtUp, () => {});
          try {
            await sub.done;
          } catch (e) {
            if (stopped) break;
            log.error({ err: e, projection: name }, 'projection failed; retrying from its checkpoint');
            await sleep(1000);
          }
        }
      } finally {
        current = undefined;
        await lock.release();
      }
    }
  };
  const done = loop().catch((e: unknown) => log.error({ err: e, projection: name }, 'projection runner ended'));

  return {
    name,
    caughtUp,
    /** Drops the live subscription; the loop starts again from the stored checkpoint. */
    restart: () => void current?.stop(),
    async stop() {
      stopped = true;
      await current?.stop();
      await done;
      clearTimeout(flushTimer);
      await flushSkipped();
    },
  };
}
