/**
 * Event store figures: append throughput against plain INSERTs (what the ordering and idempotency
 * machinery costs), catch-up read speed over a large log, and append-to-subscriber lag.
 *
 *   npx tsx bench/eventstore.ts [--json] [--pglite]
 *
 * PostgreSQL by default: BENCH_DATABASE_URL if set (a database named es_bench is made on that server),
 * else a throwaway server with fsync on. Appends are measured at synchronous_commit=on (appendRatio,
 * PostgreSQL's default) and off (asyncCommitAppendRatio), each against raw INSERTs with the same setting. --pglite runs in-process and in memory, with a smaller catch-up log.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { openDatabase, openEventStore, type Checkpoint, type Database } from '../eventstore/index.js';
import { createDatabase, startPostgres, type PostgresServer } from '../test/support/postgres.js';

const json = process.argv.includes('--json');
const pglite = process.argv.includes('--pglite');
const say = (line: string) => {
  if (!json) console.log(line);
};

const WRITERS = 8;
const APPEND_SECONDS = pglite ? 3 : 6;
/** Append and raw-INSERT runs alternate this many times. */
const ROUNDS = 3;
const CATCHUP_EVENTS = pglite ? 200_000 : 1_000_000;
const CATCHUP_PAGE = 2000;
const LAG_EVENTS = 3000;
const LAG_RATE_PER_SEC = 500;

const registry = { BenchEvent: z.object({ writer: z.number().int(), n: z.number().int() }) };
const metadata = { actor: 'bench', operationId: 'bench' };

/** Runs `writers` loops of `once` for `seconds`; returns completed operations per second. */
async function throughput(seconds: number, once: (writer: number, n: number) => Promise<unknown>): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  const counts = await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      let n = 0;
      while (performance.now() < deadline) await once(w, n++);
      return n;
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / ((performance.now() - start) / 1000);
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function main() {
  let server: PostgresServer | undefined;
  let db: Database;
  /** A fresh pool on the bench database whose sessions default to this synchronous_commit. */
  let reopen: ((synchronousCommit: 'on' | 'off') => Promise<Database>) | undefined;
  if (pglite) {
    db = await openDatabase({});
  } else {
    // A durable server (fsync on), so synchronous_commit=on really waits for the disk.
    server = process.env.BENCH_DATABASE_URL ? undefined : await startPostgres({ durable: true });
    const serverUrl = process.env.BENCH_DATABASE_URL ?? server!.url;
    const url = await createDatabase(serverUrl, 'es_bench');
    db = await openDatabase({ url, maxConnections: WRITERS + 4 });
    reopen = async (synchronousCommit) => {
      await db.exec(`ALTER DATABASE es_bench SET synchronous_commit = ${synchronousCommit}`);
      return openDatabase({ url, maxConnections: WRITERS + 4 });
    };
  }
  try {
    const store = await openEventStore(db, registry);
    say(`event store benchmark on ${pglite ? 'PGlite (in memory)' : 'PostgreSQL'}`);

    // 1. Appends through the store vs plain INSERTs into an identical table (same columns, defaults
    //    and indexes, no function, no stream lock, no idempotency check, no NOTIFY), both sides with
    //    the same synchronous_commit: on (PostgreSQL's default: each commit waits for its WAL flush)
    //    and off (commits return before the flush; a crash may lose the last few, never corrupt).
    await db.exec('CREATE TABLE events_raw (LIKE events INCLUDING ALL)');
    const runId = randomUUID().slice(0, 8);
    const appendsAt = async (synchronousCommit: 'on' | 'off') => {
      const q = reopen ? await reopen(synchronousCommit) : db;
      const s = q === db ? store : await openEventStore(q, registry);
      // Alternating rounds, so a burst of load on this noisy machine hits both sides alike.
      const appendRounds: number[] = [];
      const versions = Array.from({ length: WRITERS }, () => 0);
      const rawRounds: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        appendRounds.push(
          await throughput(APPEND_SECONDS / ROUNDS, (w, n) =>
            s.append(`bench-${runId}${synchronousCommit}w${w}`, [{ id: randomUUID(), type: 'BenchEvent', data: { writer: w, n }, metadata }], {
              expectedVersion: versions[w]!++,
            }),
          ),
        );
        rawRounds.push(
          await throughput(APPEND_SECONDS / ROUNDS, (w, n) =>
            q.query(
              'INSERT INTO events_raw (id, stream_id, version, type, data, metadata) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)',
              [randomUUID(), `raw-${synchronousCommit}-${w}`, n + 1 + round * 1_000_000, 'BenchEvent', JSON.stringify({ writer: w, n }), JSON.stringify(metadata)],
            ),
          ),
        );
      }
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const appendPerSec = mean(appendRounds);
      const rawInsertPerSec = mean(rawRounds);
      if (q !== db) await q.close();
      say(`synchronous_commit=${synchronousCommit}: append ${appendPerSec.toFixed(0)}/s, raw INSERT ${rawInsertPerSec.toFixed(0)}/s, ratio ${(appendPerSec / rawInsertPerSec).toFixed(2)}`);
      return { appendPerSec, rawInsertPerSec, appendRatio: appendPerSec / rawInsertPerSec };
    };
    const durable = await appendsAt('on');
    const asyncCommit = pglite ? durable : await appendsAt('off');
    const { appendPerSec, rawInsertPerSec, appendRatio } = durable;

    // 2. Lag: append commit -> subscriber handler, at a modest rate, from the end of the log.
    const [end] = await db.query<{ t: string; p: string }>(
      'SELECT max(transaction_id)::text AS t, max(position)::text AS p FROM events',
    );
    const committedAt = new Map<string, number>();
    const lags: number[] = [];
    let handled = 0;
    const sub = store.subscribe({ after: { transactionId: end!.t, position: end!.p } }, (e) => {
      const committed = committedAt.get(e.id);
      // The handler can run before append() has returned (NOTIFY beat the reply): that is zero lag.
      lags.push(committed === undefined ? 0 : Math.max(0, performance.now() - committed));
      handled++;
    });
    await sub.caughtUp;
    const lagStream = `lag-${runId}`;
    const gapMs = 1000 / LAG_RATE_PER_SEC;
    const lagStart = performance.now();
    for (let n = 0; n < LAG_EVENTS; n++) {
      const id = randomUUID();
      await store.append(lagStream, [{ id, type: 'BenchEvent', data: { writer: 0, n }, metadata }], { expectedVersion: n });
      committedAt.set(id, performance.now());
      const due = lagStart + (n + 1) * gapMs - performance.now();
      if (due > 0) await sleep(due);
    }
    for (const deadline = Date.now() + 10_000; handled < LAG_EVENTS && Date.now() < deadline; ) await sleep(5);
    await sub.stop();
    lags.sort((a, b) => a - b);
    const lagP50Ms = percentile(lags, 50);
    const lagP99Ms = percentile(lags, 99);
    say(`lag p50 / p99 (${LAG_EVENTS} events at ${LAG_RATE_PER_SEC}/s)     ${lagP50Ms.toFixed(1)} / ${lagP99Ms.toFixed(1)} ms`);

    // 3. Catch-up: bulk-load a large log, then read all of it through readAll in pages.
    const loadStart = performance.now();
    await db.query(
      `INSERT INTO events (id, stream_id, version, type, data, metadata)
       SELECT gen_random_uuid(), 'catchup-' || (g % 1000), g / 1000 + 1, 'BenchEvent',
              jsonb_build_object('writer', g % 1000, 'n', g / 1000), $2::jsonb
         FROM generate_series(0, $1::int - 1) g`,
      [CATCHUP_EVENTS, JSON.stringify(metadata)],
    );
    await db.exec('ANALYZE events');
    say(`bulk load of ${CATCHUP_EVENTS} events            ${((performance.now() - loadStart) / 1000).toFixed(1).padStart(9)} s`);
    let read = 0;
    let after: Checkpoint | undefined;
    const readStart = performance.now();
    for (;;) {
      const page = await store.readAll({ after, limit: CATCHUP_PAGE });
      if (page.length === 0) break;
      read += page.length;
      const last = page.at(-1)!;
      after = { transactionId: last.transactionId, position: last.position };
    }
    const catchupPerSec = read / ((performance.now() - readStart) / 1000);
    say(`catch-up readAll (${read} events, pages of ${CATCHUP_PAGE})  ${catchupPerSec.toFixed(0).padStart(9)} /s`);

    const figures = {
      backend: pglite ? 'pglite' : 'postgres',
      appendPerSec: Math.round(appendPerSec),
      rawInsertPerSec: Math.round(rawInsertPerSec),
      appendRatio: Number(appendRatio.toFixed(3)),
      synchronousCommit: pglite ? 'n/a (PGlite, in memory)' : 'on, both sides (fsync on)',
      asyncCommitAppendPerSec: Math.round(asyncCommit.appendPerSec),
      asyncCommitRawInsertPerSec: Math.round(asyncCommit.rawInsertPerSec),
      asyncCommitAppendRatio: Number(asyncCommit.appendRatio.toFixed(3)),
      catchupPerSec: Math.round(catchupPerSec),
      catchupEvents: read,
      lagP50Ms: Number(lagP50Ms.toFixed(2)),
      lagP99Ms: Number(lagP99Ms.toFixed(2)),
      lagEvents: lags.length,
    };
    if (json) console.log(JSON.stringify(figures));
    else if (pglite) say(`(PGlite: catch-up measured over ${CATCHUP_EVENTS} events, not 1,000,000)`);
  } finally {
    await db.close();
    await server?.stop();
  }
}

await main();
