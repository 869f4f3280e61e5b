import { componentLog } from '../server/log.js';
import { START, type Checkpoint } from './checkpoint.js';
import type { Database } from './database.js';
import { EVENTS_CHANNEL } from './eventLogMigrations.js';
import type { RecordedEvent } from './events.js';

const log = componentLog('eventstore.subscription');

export interface SubscribeOptions {
  /** Resume after this checkpoint (the one the subscriber stored with its last handled event). */
  after?: Checkpoint;
  /** Only streams whose id starts with this, e.g. "instance-". */
  streamPrefix?: string;
  /** Events per read while catching up. */
  batchSize?: number;
  /**
   * Wake-ups come from NOTIFY; this slow poll only covers notifications lost while the LISTEN
   * connection was down.
   */
  safetyPollMs?: number;
}

export interface Subscription {
  /** The checkpoint of the last event the handler finished (or `after`). */
  readonly checkpoint: Checkpoint;
  /** True once a read has reached the end of the visible log; stays true after. */
  readonly isCaughtUp: boolean;
  /** Resolves the first time the subscriber reaches the end of the visible log. */
  readonly caughtUp: Promise<void>;
  /** Settles when the subscription ends: resolves after stop(), rejects with the handler's error. */
  readonly done: Promise<void>;
  /** Stops after the event being handled, if any; resolves when the loop has ended. */
  stop(): Promise<void>;
}

type ReadAll<E> = (o: { after: Checkpoint; limit: number; streamPrefix?: string }) => Promise<E[]>;

/**
 * Delivers every event after `after` to `handler`, one at a time, in feed order: first the backlog in
 * pages, then live. A handler that throws stops the subscription (`done` rejects) at that event, so it
 * resumes from there after a restart instead of skipping it.
 *
 * A projection keeps exactly-once effects by writing its rows and `checkpointOf(event)` in one
 * transaction inside the handler:
 *
 *   store.subscribe({ after: await loadCheckpoint() }, (event) =>
 *     store.database.transaction(async (tx) => {
 *       await applyToReadModel(tx, event);
 *       await saveCheckpoint(tx, checkpointOf(event));
 *     }));
 */
export function subscribe<E extends RecordedEvent>(
  database: Database,
  readAll: ReadAll<E>,
  options: SubscribeOptions,
  handler: (event: E) => Promise<void> | void,
): Subscription {
  return follow(database, readAll, options, async (events, isStopped, advance) => {
    for (const event of events) {
      if (isStopped()) return;
      await handler(event);
      advance(event);
    }
  });
}

/**
 * The same feed, a page at a time: `handler` gets every event one read returned (at most `batchSize`,
 * in feed order), and the checkpoint moves past the page once it resolves. A projection applies a page
 * in one transaction with one checkpoint write, so a burst of appends costs a few transactions rather
 * than one per event. A handler that throws stops the subscription before the page.
 */
export function subscribePages<E extends RecordedEvent>(
  database: Database,
  readAll: ReadAll<E>,
  options: SubscribeOptions,
  handler: (events: readonly E[]) => Promise<void> | void,
): Subscription {
  return follow(database, readAll, options, async (events, isStopped, advance) => {
    if (isStopped()) return;
    await handler(events);
    advance(events[events.length - 1]!);
  });
}

type Deliver<E> = (events: E[], isStopped: () => boolean, advance: (last: E) => void) => Promise<void>;

function follow<E extends RecordedEvent>(database: Database, readAll: ReadAll<E>, options: SubscribeOptions, deliver: Deliver<E>): Subscription {
  const batchSize = options.batchSize ?? 500;
  const safetyPollMs = options.safetyPollMs ?? 3000;
  let checkpoint = options.after ?? START;
  let stopped = false;
  let isCaughtUp = false;
  let notified = false;
  let wake: (() => void) | undefined;

  let reachedEnd!: () => void;
  let failedBeforeEnd!: (e: unknown) => void;
  const caughtUp = new Promise<void>((resolve, reject) => ((reachedEnd = resolve), (failedBeforeEnd = reject)));
  caughtUp.catch(() => {});

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const run = async () => {
    // Listen before the first read: a commit between that read and LISTEN would otherwise go unnoticed.
    const unlisten = await database.listen(EVENTS_CHANNEL, () => {
      notified = true;
      wake?.();
    });
    let backoffMs = 0;
    try {
      while (!stopped) {
        notified = false;
        const events = await readAll({ after: checkpoint, limit: batchSize, streamPrefix: options.streamPrefix });
        const readAt = performance.now();
        if (events.length > 0) {
          await deliver(
            events,
            () => stopped,
            (last) => (checkpoint = { transactionId: last.transactionId, position: last.position }),
          );
          if (stopped) return;
        }
        if (events.length === batchSize) continue;
        // Committed events can be held back by a transaction that appends nothing (a projection
        // writing its rows, or any transaction of the server, in any database), and its commit sends
        // no NOTIFY: look again soon rather than at the next poll. Asked as "any event past the
        // checkpoint", not "any still held back": the holder may commit between the read above and
        // this question, and the event is then unread but no longer withheld.
        const unread = !isCaughtUp || !notified ? await hasUnreadEvents(database, checkpoint, options.streamPrefix, readAt) : false;
        // Caught up means nothing committed is left to read, not merely a short read: events committed
        // before the subscription started may still have been held back.
        if (!isCaughtUp && !unread) {
          isCaughtUp = true;
          reachedEnd();
        }
        if (notified) continue;
        backoffMs = unread ? Math.min(Math.max(backoffMs * 2, 2), 200) : 0;
        if (!stopped && !notified) await sleep(backoffMs || safetyPollMs);
      }
    } finally {
      await unlisten().catch(() => {});
    }
  };

  const done = run().catch((e: unknown) => {
    stopped = true;
    failedBeforeEnd(e);
    log.error({ err: e, checkpoint }, 'subscription stopped: handler or read failed');
    throw e;
  });
  done.catch(() => {});

  return {
    get checkpoint() {
      return checkpoint;
    },
    get isCaughtUp() {
      return isCaughtUp;
    },
    caughtUp,
    done,
    async stop() {
      stopped = true;
      wake?.();
      await done.catch(() => {});
    },
  };
}

/**
 * Committed events past `after` that the last read did not return: held back then, or since released.
 * Subscriptions in lockstep ask this about the same checkpoint at once, so they share one query; but
 * only one that started after `readAt` (when the asker's own read came back), so a shared answer is never
 * older than the read it checks.
 */
const unreadQuestions = new WeakMap<Database, Map<string, { startedAt: number; answer: Promise<boolean> }>>();
function hasUnreadEvents(database: Database, after: Checkpoint, streamPrefix: string | undefined, readAt: number): Promise<boolean> {
  let asked = unreadQuestions.get(database);
  if (!asked) unreadQuestions.set(database, (asked = new Map()));
  const key = `${after.transactionId}/${after.position}/${streamPrefix ?? ''}`;
  const pending = asked.get(key);
  if (pending && pending.startedAt >= readAt) return pending.answer;
  const question = { startedAt: performance.now(), answer: askUnread(database, after, streamPrefix) };
  asked.set(key, question);
  void question.answer.finally(() => {
    if (asked.get(key) === question) asked.delete(key);
  }).catch(() => {});
  return question.answer;
}

async function askUnread(database: Database, after: Checkpoint, streamPrefix?: string): Promise<boolean> {
  const [row] = await database.query<{ unread: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM events
       WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
       ${streamPrefix === undefined ? '' : 'AND starts_with(stream_id, $3)'}) AS unread`,
    streamPrefix === undefined ? [after.transactionId, after.position] : [after.transactionId, after.position, streamPrefix],
  );
  return row?.unread ?? false;
}

/** The checkpoint a subscriber stores after handling `event`. */
export const checkpointOf = (event: Pick<RecordedEvent, 'transactionId' | 'position'>): Checkpoint => ({
  transactionId: event.transactionId,
  position: event.position,
});
