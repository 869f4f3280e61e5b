import { z } from 'zod';
import type { Database, Queryable } from './database.js';
import { START, type Checkpoint } from './checkpoint.js';
import { EventIdConflict, InvalidEvent, WrongExpectedVersion } from './errors.js';
import { componentLog } from '../server/log.js';
import { currentTraceparent } from '../server/telemetry.js';
import { EVENTS_CHANNEL, eventLogMigrations } from './eventLogMigrations.js';
import {
  ExpectedVersion,
  NewEvent,
  RecordedEvent,
  StreamId,
  type EventRegistry,
  type TypedEvent,
  type TypedNewEvent,
} from './events.js';
import { migrate } from './migrations.js';
import { reportAppendTiming, type AppendOutcome } from './appendTimings.js';
import { subscribe, subscribePages, type Subscription, type SubscribeOptions } from './subscription.js';

const log = componentLog('eventstore');

export interface AppendOptions {
  expectedVersion: ExpectedVersion;
  /**
   * Append inside the caller's transaction (it then commits or rolls back with the caller's other
   * writes). Without it the append is its own transaction.
   */
  tx?: Queryable;
}

export interface AppendResult<R extends EventRegistry> {
  events: TypedEvent<R>[];
  /** The stream's last version after this append: the expectedVersion for the next one. */
  streamVersion: number;
  /** True when every event id was already stored: a retry, nothing was written. */
  duplicate: boolean;
}

export interface ReadAllOptions {
  /** Events after this checkpoint; the start of the log by default. */
  after?: Checkpoint;
  limit: number;
  /** Only streams whose id starts with this, e.g. "instance-". */
  streamPrefix?: string;
  tx?: Queryable;
}

export type EventStore<R extends EventRegistry> = ReturnType<typeof eventStoreOn<R>>;

// position and transaction_id leave as text (64-bit, exact in JS). The aliases shadow the columns in
// ORDER BY, which would then sort as text ('1000' < '999'): always order by events.<column>.
const EVENT_COLUMNS = `position::text AS position, transaction_id::text AS transaction_id, id, stream_id,
  version, type, data, metadata, recorded_at`;

interface EventRow {
  position: string;
  transaction_id: string;
  id: string;
  stream_id: string;
  version: number;
  type: string;
  data: unknown;
  metadata: unknown;
  recorded_at: Date;
}

const fromRow = (row: EventRow, data: unknown): RecordedEvent => ({
  id: row.id,
  streamId: row.stream_id,
  version: row.version,
  position: row.position,
  transactionId: row.transaction_id,
  type: row.type,
  data,
  metadata: row.metadata as RecordedEvent['metadata'],
  recordedAt: row.recorded_at,
});

/** The shortest gap between two wake-ups this process sends while appends keep coming. */
const WAKE_GAP_MS = 2;

/**
 * Opens the event store on the controller's database, bringing its tables up to date first. The
 * registry (event type -> zod schema of its data) comes from the domain; the store accepts and returns
 * only events it describes.
 */
export async function openEventStore<R extends EventRegistry>(database: Database, registry: R) {
  await migrate(database, eventLogMigrations);
  return eventStoreOn(database, registry);
}

function eventStoreOn<R extends EventRegistry>(database: Database, registry: R) {
  const dataSchema = (type: string, where: Record<string, unknown>): z.ZodType => {
    const schema = Object.hasOwn(registry, type) ? registry[type] : undefined;
    if (!schema) throw new InvalidEvent(`unknown event type ${type}`, { ...where, type });
    return schema;
  };

  // The envelope is not re-parsed on read: its columns are typed and constrained by PostgreSQL and its
  // metadata was validated on append, and skipping it doubles catch-up speed. The data is parsed with
  // the registry, so a reader never gets data its schema does not describe.
  const toEvent = (row: EventRow): TypedEvent<R> => {
    const data = dataSchema(row.type, { position: row.position }).safeParse(row.data);
    if (!data.success) {
      throw new InvalidEvent(`stored ${row.type} at position ${row.position} no longer matches its schema`, {
        issues: data.error.issues,
      });
    }
    return fromRow(row, data.data) as TypedEvent<R>;
  };

  /** Validates the whole batch before anything is sent, so a bad event writes nothing (invariant 10). */
  const validate = (streamId: string, events: readonly TypedNewEvent<R>[]) => {
    if (!StreamId.safeParse(streamId).success) throw new InvalidEvent(`bad stream id ${streamId}`, { streamId });
    if (events.length === 0) throw new InvalidEvent('an append needs at least one event', { streamId });
    const ids = new Set<string>();
    return events.map((input, index) => {
      const envelope = NewEvent.safeParse(input);
      if (!envelope.success) {
        throw new InvalidEvent(`event ${index} of the append to ${streamId} is malformed`, {
          streamId,
          index,
          issues: envelope.error.issues,
        });
      }
      const { id, type, metadata } = envelope.data;
      if (ids.has(id)) throw new InvalidEvent(`event id ${id} appears twice in one append`, { streamId, id });
      ids.add(id);
      const data = dataSchema(type, { streamId, index }).safeParse(input.data);
      if (!data.success) {
        throw new InvalidEvent(`${type} data is invalid`, { streamId, index, type, issues: data.error.issues });
      }
      return { id, type, data: data.data, metadata };
    });
  };

  /**
   * A NOTIFY in the appending transaction makes every commit take PostgreSQL's global notify-queue lock,
   * which serialises concurrent appenders (measured: it costs a third of append throughput). A wake-up
   * carries no data, since subscribers read everything after their checkpoint, so appends that commit
   * on their own share one NOTIFY sent just after. Appends committed while one is in flight send one more.
   * Were the process to die between commit and NOTIFY, subscribers still see the events at their safety poll.
   */
  let wakeInFlight = false;
  let wakeAgain = false;
  let lastWakeAt = -Infinity;
  const wakeSubscribers = (): void => {
    if (wakeInFlight) {
      wakeAgain = true;
      return;
    }
    wakeInFlight = true;
    // Under a steady stream of appends one wake-up per WAKE_GAP_MS is enough: subscribers read in pages
    // anyway, and a NOTIFY per append cost about a sixth of append throughput (bench:eventstore). The
    // first append after a quiet spell wakes them at once.
    const wait = lastWakeAt + WAKE_GAP_MS - performance.now();
    const send = () => {
      lastWakeAt = performance.now();
      database
        .notify(EVENTS_CHANNEL, '')
        .catch((e: unknown) => log.warn({ err: e }, 'could not wake subscribers; they will see the events at their safety poll'))
        .finally(() => {
          wakeInFlight = false;
          if (wakeAgain) {
            wakeAgain = false;
            wakeSubscribers();
          }
        });
    };
    if (wait > 0) setTimeout(send, wait).unref();
    else send();
  };

  /**
   * The feed as subscriptions read it. Every projection of a process follows the whole feed, so after a
   * wake-up they all ask for the page after the same checkpoint at the same moment: a read already in
   * flight for that checkpoint answers them all. What it returns is the start of what a read of their
   * own would return, since the feed only grows at its end (invariant 2); a commit that landed after the
   * shared read began is caught by the subscription's unread check, like any read that lost that race.
   * Nothing is kept once the read is back: a page kept for later askers made them apply shorter pages,
   * which cost more transactions than the reads it saved.
   */
  const feedReads = new Map<string, Promise<TypedEvent<R>[]>>();
  const readFeed = async (o: { after: Checkpoint; limit: number; streamPrefix?: string }): Promise<TypedEvent<R>[]> => {
    const key = `${o.after.transactionId}/${o.after.position}/${o.limit}/${o.streamPrefix ?? ''}`;
    let read = feedReads.get(key);
    if (!read) {
      read = store.readAll({ after: o.after, limit: o.limit, streamPrefix: o.streamPrefix }).finally(() => feedReads.delete(key));
      feedReads.set(key, read);
    }
    return (await read).slice();
  };

  const store = {
    database,

    /** For a caller that appended inside its own transaction (`tx`): wake the subscribers once it has committed. */
    wakeSubscribers,

    /**
     * Appends events to one stream atomically, if the stream is at `expectedVersion`. Appending a batch
     * whose event ids are all stored already (a retried activity) writes nothing and returns what was
     * stored, even if the stream has moved on since.
     */
    async append(streamId: string, events: readonly TypedNewEvent<R>[], options: AppendOptions): Promise<AppendResult<R>> {
      const startedMs = performance.now();
      const expected = ExpectedVersion.parse(options.expectedVersion);
      const batch = validate(streamId, withTraceparent(events));
      const expectedParam = expected === 'any' ? null : expected === 'noStream' ? 0 : expected;
      let rows: (EventRow & { outcome: string; stream_version: number })[];
      const payload = JSON.stringify(batch);
      const checkedAppend = () =>
        (options.tx ?? database).query<EventRow & { outcome: string; stream_version: number }>('SELECT * FROM append_events($1, $2, $3::jsonb, $4)', [
          streamId,
          expectedParam,
          payload,
          options.tx !== undefined,
        ]);
      try {
        if (options.tx || expectedParam === null) rows = await checkedAppend();
        else {
          // The common case: ids are looked up only when the stream is not at the expected version
          // (migration 003). Ids stored already at that version fail on their unique index, and the
          // checked append then says whether this is a retry (duplicate) or a conflict.
          try {
            rows = await database.query('SELECT * FROM append_events_at($1, $2, $3::jsonb)', [streamId, expectedParam, payload]);
          } catch (e) {
            if ((e as { code?: string }).code !== '23505') throw e;
            rows = await checkedAppend();
          }
        }
      } catch (e) {
        // Only reachable when the same id is appended to two streams at the same moment.
        if ((e as { code?: string }).code === '23505') {
          reportAppendTiming(startedMs, 'id_conflict');
          throw new EventIdConflict(streamId, batch.map((b) => b.id));
        }
        reportAppendTiming(startedMs, 'error');
        throw e;
      }
      const first = rows[0];
      if (!first) throw new Error(`append_events returned nothing for ${streamId}`);
      reportAppendTiming(startedMs, first.outcome as AppendOutcome);
      if (!options.tx && first.outcome === 'appended') wakeSubscribers();
      switch (first.outcome) {
        case 'wrong_version':
          throw new WrongExpectedVersion(streamId, expected, first.stream_version);
        case 'id_conflict':
          throw new EventIdConflict(streamId, batch.map((b) => b.id));
        default:
          return {
            // Just validated on the way in: map the stored rows without parsing them again.
            events: rows.map((row) => fromRow(row, row.data) as TypedEvent<R>),
            streamVersion: first.outcome === 'appended' ? first.stream_version : Math.max(...rows.map((r) => r.version)),
            duplicate: first.outcome === 'duplicate',
          };
      }
    },

    /** One stream in version order. Versions start at 1. */
    async readStream(streamId: string, options: { fromVersion?: number; limit?: number; tx?: Queryable } = {}) {
      const rows = await (options.tx ?? database).query<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY events.version LIMIT $3`,
        [streamId, options.fromVersion ?? 1, options.limit ?? null],
      );
      return rows.map(toEvent);
    },

    /**
     * The global feed, in one order every reader agrees on: (transactionId, position). Only events of
     * transactions older than every transaction still running are returned, so an event committed
     * late by a slow writer can never appear behind a checkpoint a reader has already passed
     * (invariant 2). The price: a long-open transaction anywhere on the server holds the feed back.
     */
    async readAll(options: ReadAllOptions): Promise<TypedEvent<R>[]> {
      const after = options.after ?? START;
      const prefix = options.streamPrefix;
      const rows = await (options.tx ?? database).query<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events
          WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
            AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            ${prefix === undefined ? '' : 'AND starts_with(stream_id, $4)'}
          ORDER BY events.transaction_id, events.position
          LIMIT $3`,
        prefix === undefined
          ? [after.transactionId, after.position, options.limit]
          : [after.transactionId, after.position, options.limit, prefix],
      );
      return rows.map(toEvent);
    },

    /** Catch up from `after`, then follow live. See subscription.ts. */
    subscribe(options: SubscribeOptions, handler: (event: TypedEvent<R>) => Promise<void> | void): Subscription {
      return subscribe(database, readFeed, options, handler);
    },

    /** The same, a page of events per handler call (see subscription.ts). */
    subscribePages(options: SubscribeOptions, handler: (events: readonly TypedEvent<R>[]) => Promise<void> | void): Subscription {
      return subscribePages(database, readFeed, options, handler);
    },
  };
  return store;
}

/**
 * Every event's metadata names the trace it was written in (the request's, the activity's), unless the
 * writer set one itself: one place, so no writer can forget it. Outside a span, nothing is added.
 */
function withTraceparent<E extends { metadata: { traceparent?: string } }>(events: readonly E[]): readonly E[] {
  const traceparent = currentTraceparent();
  if (!traceparent) return events;
  return events.map((e) => (e.metadata.traceparent ? e : { ...e, metadata: { ...e.metadata, traceparent } }));
}
