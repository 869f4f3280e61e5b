import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import {
  checkpointFromString,
  checkpointOf,
  checkpointToString,
  compareCheckpoints,
  EventIdConflict,
  InvalidEvent,
  migrate,
  openDatabase,
  openEventStore,
  START,
  WrongExpectedVersion,
  type Checkpoint,
  type Database,
  type DatabaseTarget,
  type EventStore,
  type TypedEvent,
  type TypedNewEvent,
} from '../eventstore/index.js';
import { eventLogMigrations } from '../eventstore/eventLogMigrations.js';
import { createDatabase } from './support/postgres.js';

const registry = {
  InstanceRequested: z.object({ flavor: z.string(), projectId: z.string() }),
  InstanceStarted: z.object({ hostId: z.string() }),
  Counted: z.object({ writer: z.number().int(), n: z.number().int() }),
};
type Registry = typeof registry;
type Store = EventStore<Registry>;

const metadata = { actor: 'test', operationId: 'op-1' };
const requested = (flavor = 'm1.small'): TypedNewEvent<Registry> => ({
  id: randomUUID(),
  type: 'InstanceRequested',
  data: { flavor, projectId: 'p1' },
  metadata,
});
const started = (): TypedNewEvent<Registry> => ({ id: randomUUID(), type: 'InstanceStarted', data: { hostId: 'h1' }, metadata });
/** A stream kind no other test uses, so readAll with this prefix sees only this test's events. */
const freshKind = () => `t${randomBytes(4).toString('hex')}`;
const streamOf = (kind: string) => `${kind}-${randomUUID()}`;

const backends: [string, () => Promise<DatabaseTarget>][] = [
  ['PostgreSQL', async () => ({ url: await createDatabase(inject('postgresUrl'), 'es_conformance'), maxConnections: 20 })],
  ['PGlite', async () => ({})],
];

describe.each(backends)('event store on %s', (backend, target) => {
  let db: Database;
  let store: Store;

  beforeAll(async () => {
    db = await openDatabase(await target());
    store = await openEventStore(db, registry);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function readAllOf(kind: string, after: Checkpoint = START): Promise<TypedEvent<Registry>[]> {
    return store.readAll({ after, limit: 100_000, streamPrefix: `${kind}-` });
  }

  /**
   * The feed shows a committed event once every transaction older than it has ended, on the whole
   * server (other test files' databases included), so a read straight after an append may briefly see
   * less. Wait, within a bound, until `count` events are visible; what they are is asserted after.
   */
  async function feedShows(kind: string, count: number): Promise<void> {
    const deadline = Date.now() + 15_000;
    while ((await readAllOf(kind)).length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  it('an append states the expected version and a mismatch fails cleanly, in all three forms', async () => {
    const stream = streamOf('instance');
    const first = await store.append(stream, [requested()], { expectedVersion: 'noStream' });
    expect(first.events.map((e) => e.version)).toEqual([1]);
    expect(first.streamVersion).toBe(1);

    await expect(store.append(stream, [started()], { expectedVersion: 'noStream' })).rejects.toMatchObject({
      name: 'WrongExpectedVersion',
      code: 'CONFLICT',
      streamId: stream,
      expected: 'noStream',
      actual: 1,
    });
    const stale = await store.append(stream, [started()], { expectedVersion: 0 }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(WrongExpectedVersion);
    expect(stale).toMatchObject({ expected: 0, actual: 1 });
    await expect(store.append(stream, [started()], { expectedVersion: 5 })).rejects.toMatchObject({ expected: 5, actual: 1 });
    await expect(store.append(streamOf('instance'), [started()], { expectedVersion: 1 })).rejects.toMatchObject({ actual: 0 });

    const second = await store.append(stream, [started(), started()], { expectedVersion: 1 });
    expect(second.events.map((e) => e.version)).toEqual([2, 3]);
    const third = await store.append(stream, [started()], { expectedVersion: 'any' });
    expect(third.events.map((e) => e.version)).toEqual([4]);
    expect((await store.readStream(stream)).map((e) => e.version)).toEqual([1, 2, 3, 4]);
  });

  it('of two concurrent appends deciding on the same version, exactly one wins', async () => {
    const stream = streamOf('host');
    await store.append(stream, [requested()], { expectedVersion: 'noStream' });
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => store.append(stream, [started()], { expectedVersion: 1 })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) expect(r.reason).toBeInstanceOf(WrongExpectedVersion);
    expect(await store.readStream(stream)).toHaveLength(2);
  });

  it('re-appending a batch whose ids are stored is a no-op returning the stored events, even when its expected version is now stale', async () => {
    const stream = streamOf('instance');
    const batch = [requested(), started()];
    const first = await store.append(stream, batch, { expectedVersion: 'noStream' });
    expect(first.duplicate).toBe(false);

    // The activity crashed after the commit and Temporal retries it: same ids, same expected version.
    const retry = await store.append(stream, batch, { expectedVersion: 'noStream' });
    expect(retry.duplicate).toBe(true);
    expect(retry.events).toEqual(first.events);
    expect(retry.streamVersion).toBe(2);

    await store.append(stream, [started()], { expectedVersion: 2 });
    const lateRetry = await store.append(stream, batch, { expectedVersion: 'noStream' });
    expect(lateRetry.events).toEqual(first.events);
    expect((await store.readStream(stream)).map((e) => e.id)).toEqual([...batch.map((e) => e.id), expect.any(String)]);
  });

  it('a retry racing its own first attempt stores the batch once', async () => {
    const stream = streamOf('instance');
    const batch = [requested(), started()];
    const results = await Promise.all([1, 2, 3].map(() => store.append(stream, batch, { expectedVersion: 'noStream' })));
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    for (const r of results) expect(r.events.map((e) => e.id)).toEqual(batch.map((e) => e.id));
    expect(await store.readStream(stream)).toHaveLength(2);
  });

  it('an event id reused in another batch or stream is rejected and writes nothing', async () => {
    const stream = streamOf('instance');
    const reused = requested();
    await store.append(stream, [reused], { expectedVersion: 'noStream' });
    await expect(store.append(stream, [reused, started()], { expectedVersion: 'any' })).rejects.toBeInstanceOf(EventIdConflict);
    await expect(store.append(streamOf('instance'), [reused], { expectedVersion: 'any' })).rejects.toBeInstanceOf(EventIdConflict);
    expect(await store.readStream(stream)).toHaveLength(1);
  });

  it('a batch whose ids are stored, re-sent at the version the stream is now at, is still a duplicate; an id of another stream at the right version is a conflict', async () => {
    // The fast append path looks ids up only when the version is off: these two cases reach the ids'
    // unique index instead, and must answer as the checked path does.
    const stream = streamOf('instance');
    const batch = [requested()];
    const first = await store.append(stream, batch, { expectedVersion: 'noStream' });
    const again = await store.append(stream, batch, { expectedVersion: 1 });
    expect(again.duplicate).toBe(true);
    expect(again.events).toEqual(first.events);
    const other = streamOf('instance');
    await store.append(other, [started()], { expectedVersion: 'noStream' });
    await expect(store.append(other, [batch[0]!, started()], { expectedVersion: 1 })).rejects.toBeInstanceOf(EventIdConflict);
    expect(await store.readStream(other)).toHaveLength(1);
    expect(await store.readStream(stream)).toHaveLength(1);
  });

  it('reads a stream in version order and the whole log in one global order', async () => {
    const kind = freshKind();
    const [a, b] = [streamOf(kind), streamOf(kind)];
    const appended: string[] = [];
    for (let i = 0; i < 5; i++) {
      for (const s of [a, b]) appended.push(...(await store.append(s, [started()], { expectedVersion: i })).events.map((e) => e.id));
    }
    expect((await store.readStream(a)).map((e) => e.version)).toEqual([1, 2, 3, 4, 5]);
    expect((await store.readStream(a, { fromVersion: 2, limit: 2 })).map((e) => e.version)).toEqual([2, 3]);

    await feedShows(kind, appended.length);
    const all = await readAllOf(kind);
    expect(all.map((e) => e.id)).toEqual(appended);
    for (let i = 1; i < all.length; i++) expect(compareCheckpoints(checkpointOf(all[i - 1]!), checkpointOf(all[i]!))).toBe(-1);

    const paged: string[] = [];
    for (let after = START; ; ) {
      const page = await store.readAll({ after, limit: 3, streamPrefix: `${kind}-` });
      if (page.length === 0) break;
      paged.push(...page.map((e) => e.id));
      after = checkpointFromString(checkpointToString(checkpointOf(page.at(-1)!)));
    }
    expect(paged).toEqual(appended);

    const first = all[0]!;
    expect(first).toMatchObject({ streamId: a, version: 1, type: 'InstanceStarted', data: { hostId: 'h1' }, metadata });
    expect(first.position).toMatch(/^\d+$/);
    expect(first.transactionId).toMatch(/^\d+$/);
    expect(first.recordedAt).toBeInstanceOf(Date);
  });

  it('an unknown type, invalid data or bad metadata is rejected and nothing of the batch is written', async () => {
    const stream = streamOf('instance');
    const bad: TypedNewEvent<Registry>[][] = [
      [requested(), { id: randomUUID(), type: 'InstanceExploded', data: {}, metadata } as never],
      [requested(), { id: randomUUID(), type: 'InstanceStarted', data: { hostId: 7 }, metadata } as never],
      [{ ...requested(), metadata: { operationId: 'op-1' } } as never],
      [{ ...requested(), id: 'not-a-uuid' }],
    ];
    for (const batch of bad) {
      await expect(store.append(stream, batch, { expectedVersion: 'any' })).rejects.toBeInstanceOf(InvalidEvent);
    }
    await expect(store.append('no spaces allowed', [requested()], { expectedVersion: 'any' })).rejects.toBeInstanceOf(InvalidEvent);
    expect(await store.readStream(stream)).toEqual([]);
  });

  it('the log is append-only: the database refuses to update or delete an event', async () => {
    const stream = streamOf('instance');
    await store.append(stream, [requested()], { expectedVersion: 'noStream' });
    await expect(db.query(`UPDATE events SET type = 'X' WHERE stream_id = $1`, [stream])).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM events WHERE stream_id = $1', [stream])).rejects.toThrow(/append-only/);
    expect(await store.readStream(stream)).toHaveLength(1);
  });

  it('migrations run twice, and from two processes at once, apply once', async () => {
    expect(await migrate(db, eventLogMigrations)).toEqual([]);
    const mine = [{ id: `test/${freshKind()}`, sql: `CREATE TABLE ${freshKind()}_rows (id int); SELECT 1;` }];
    const twice = await Promise.all([migrate(db, mine), migrate(db, mine)]);
    expect(twice.flat()).toEqual([mine[0]!.id]);

    // A fresh database opened by two "processes" (two pools) at the same moment.
    const fresh: DatabaseTarget = backend === 'PostgreSQL' ? { url: await createDatabase(inject('postgresUrl'), 'es_migrate_race') } : {};
    const [one, two] = await Promise.all([openDatabase(fresh), openDatabase(fresh)]);
    try {
      const ran = await Promise.all([migrate(one, eventLogMigrations), migrate(backend === 'PostgreSQL' ? two : one, eventLogMigrations)]);
      expect(ran.flat()).toEqual(eventLogMigrations.map((m) => m.id));
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('a subscriber catches up, follows live, and resumes from its stored checkpoint', async () => {
    const kind = freshKind();
    const stream = streamOf(kind);
    await store.append(stream, [requested(), started(), started()], { expectedVersion: 'noStream' });

    const seen: TypedEvent<Registry>[] = [];
    const sub = store.subscribe({ after: START, streamPrefix: `${kind}-`, batchSize: 2 }, (e) => {
      seen.push(e);
    });
    await sub.caughtUp;
    expect(sub.isCaughtUp).toBe(true);
    expect(seen.map((e) => e.version)).toEqual([1, 2, 3]);

    const live = await store.append(stream, [started()], { expectedVersion: 3 });
    await expect.poll(() => seen.length, { timeout: 2000, interval: 5 }).toBe(4);
    expect(seen[3]!.id).toBe(live.events[0]!.id);
    const stored = checkpointToString(sub.checkpoint);
    await sub.stop();

    await store.append(stream, [started()], { expectedVersion: 4 });
    const resumed: number[] = [];
    const again = store.subscribe({ after: checkpointFromString(stored), streamPrefix: `${kind}-` }, (e) => {
      resumed.push(e.version);
    });
    await again.caughtUp;
    await again.stop();
    expect(resumed).toEqual([5]);
  });

  it("a projection's rows and checkpoint commit together: a failing handler leaves neither and resumes at that event", async () => {
    const kind = freshKind();
    const stream = streamOf(kind);
    await db.exec(`CREATE TABLE ${kind}_projection (name text PRIMARY KEY, checkpoint text, count int)`);
    await db.query(`INSERT INTO ${kind}_projection VALUES ('p', $1, 0)`, [checkpointToString(START)]);
    await store.append(stream, [requested(), started()], { expectedVersion: 'noStream' });

    const project = (failOn?: number) => async (event: TypedEvent<Registry>) =>
      store.database.transaction(async (tx) => {
        await tx.query(`UPDATE ${kind}_projection SET count = count + 1, checkpoint = $1`, [checkpointToString(checkpointOf(event))]);
        if (event.version === failOn) throw new Error('projection bug');
      });
    const stored = async () => (await db.query<{ checkpoint: string; count: number }>(`SELECT * FROM ${kind}_projection`))[0]!;

    const failing = store.subscribe({ after: checkpointFromString((await stored()).checkpoint), streamPrefix: `${kind}-` }, project(2));
    await expect(failing.done).rejects.toThrow('projection bug');
    expect((await stored()).count).toBe(1);

    const fixed = store.subscribe({ after: checkpointFromString((await stored()).checkpoint), streamPrefix: `${kind}-` }, project());
    await fixed.caughtUp;
    await fixed.stop();
    expect(await stored()).toMatchObject({ count: 2 });
  });

  it('a live subscriber never skips an event committed late by a concurrent writer', async () => {
    const kind = freshKind();
    const writers = 8;
    const perWriter = 1000;
    const seen = new Map<string, number>();
    const lastVersion = new Map<string, number>();
    const outOfOrder: string[] = [];
    let previous = START;
    const sub = store.subscribe({ after: START, streamPrefix: `${kind}-` }, (e) => {
      if (compareCheckpoints(previous, checkpointOf(e)) >= 0) outOfOrder.push(`${e.transactionId}:${e.position} after ${checkpointToString(previous)}`);
      previous = checkpointOf(e);
      seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
      if (e.version !== (lastVersion.get(e.streamId) ?? 0) + 1) outOfOrder.push(`${e.streamId}@${e.version}`);
      lastVersion.set(e.streamId, e.version);
    });
    await sub.caughtUp;

    // Some appends hold their transaction open a few ms after taking their position, so positions
    // routinely commit out of order: the case a position-only feed gets wrong.
    const adversarial = backend === 'PostgreSQL';
    let last = START;
    const write = async (w: number) => {
      const stream = streamOf(kind);
      for (let n = 0; n < perWriter; n++) {
        const event: TypedNewEvent<Registry> = { id: randomUUID(), type: 'Counted', data: { writer: w, n }, metadata };
        const holdMs = adversarial && Math.random() < 0.3 ? 1 + Math.floor(Math.random() * 3) : 0;
        const { events } = holdMs
          ? await db.transaction(async (tx) => {
              const result = await store.append(stream, [event], { expectedVersion: n, tx });
              await sleep(holdMs);
              return result;
            })
          : await store.append(stream, [event], { expectedVersion: n });
        const cp = checkpointOf(events[0]!);
        if (compareCheckpoints(cp, last) > 0) last = cp;
      }
    };
    await Promise.all(Array.from({ length: writers }, (_, w) => write(w)));

    // Wait until the subscriber has passed the last event in feed order; anything it skipped is gone.
    await expect.poll(() => compareCheckpoints(sub.checkpoint, last) >= 0, { timeout: 30_000, interval: 20 }).toBe(true);
    await sub.stop();
    expect(seen.size).toBe(writers * perWriter);
    expect([...seen.values()].every((count) => count === 1)).toBe(true);
    expect(outOfOrder.slice(0, 10)).toEqual([]);
  });
});
