/**
 * Metering figures: how fast the usage consumer folds a large log of lifecycle events into usage
 * records, against the event store's own catch-up read speed over the same log in the same run.
 *
 *   npm run bench:metering -- [--json] [--events N] [--interleave action|event]
 *
 * PostgreSQL: BENCH_DATABASE_URL if set (a database named metering_bench is made on that server), else
 * a throwaway server. The log is 1,000,000 events by default: instances of 10 projects booted across a
 * day, each stopped and started three times, their events interleaved as many tenants' would be.
 */
import { performance } from 'node:perf_hooks';
import { eventRegistry } from '../domain/events.js';
import { openDatabase, openEventStore, type Checkpoint, type Database } from '../eventstore/index.js';
import { randomUUID } from 'node:crypto';
import { storeSamples } from '../activities/meterSamples.js';
import { samplesOf } from '../domain/meters.js';
import { migrateProjections, rebuildProjection } from '../projections/index.js';
import type { Runtime } from '../server/runtime.js';
import { createDatabase, startPostgres, type PostgresServer } from '../test/support/postgres.js';

const json = process.argv.includes('--json');
const eventsArg = process.argv.indexOf('--events');
const TOTAL_EVENTS = eventsArg > 0 ? Number(process.argv[eventsArg + 1]) : 1_000_000;
const say = (line: string) => {
  if (!json) console.log(line);
};

// Events per instance: boot requested, launched, then three stop/start cycles (task started, transition, task finished).
const PER_INSTANCE = 20;
const PAGE = 2000;
// --interleave event: event k of every instance before event k+1 of any (each page touches as many
// instances as it holds events, the consumer's worst case). The default, action: an action's events
// (task started, transition, task finished) follow each other, as a workflow appends them within
// milliseconds, and the actions of all instances interleave.
const byEvent = process.argv.includes('--interleave') && process.argv[process.argv.indexOf('--interleave') + 1] === 'event';

/** One INSERT of the whole log, generated in SQL, in the order --interleave asks for. */
async function loadLog(db: Database, instances: number): Promise<void> {
  // md5 as a UUID with the version and variant digits of a v4, which the event schemas insist on.
  await db.exec(`CREATE OR REPLACE FUNCTION bench_uuid(text) RETURNS uuid LANGUAGE sql IMMUTABLE AS
    $$ SELECT (substr(md5($1), 1, 12) || '4' || substr(md5($1), 14, 3) || '8' || substr(md5($1), 18, 15))::uuid $$`);
  await db.query(
    `WITH g AS (SELECT s % $1 AS i, s / $1 AS k FROM generate_series(0, $1 * ${PER_INSTANCE} - 1) s),
     e AS (
       SELECT i, k,
         bench_uuid('instance' || i) AS instance_id,
         bench_uuid('op' || i || '-' || CASE WHEN k < 2 THEN 0 ELSE (k - 2) / 3 + 1 END) AS operation_id,
         to_char(timestamptz '2026-11-01 00:00:00+00' + make_interval(mins => (i % 1440)::int + k * 17), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at,
         (k - 2) % 6 AS phase
       FROM g)
     INSERT INTO events (id, stream_id, version, type, data, metadata)
     SELECT gen_random_uuid(), 'instance-' || instance_id, k + 1,
       CASE WHEN k = 0 THEN 'InstanceBootRequested' WHEN k = 1 THEN 'InstanceLaunched'
            WHEN phase IN (0, 3) THEN 'InstanceTaskStarted' WHEN phase IN (2, 5) THEN 'InstanceTaskFinished'
            WHEN phase = 1 THEN 'InstanceStopped' ELSE 'InstanceStarted' END,
       CASE WHEN k = 0 THEN jsonb_build_object('instanceId', instance_id, 'projectId', bench_uuid('project' || (i % 10)), 'name', 'vm-' || i,
                              'flavor', jsonb_build_object('id', bench_uuid('flavor'), 'vcpus', 1, 'memoryMb', 512, 'diskGb', 1),
                              'imageId', bench_uuid('image'), 'networkId', null, 'operationId', operation_id, 'requestedAt', at)
            WHEN k = 1 THEN jsonb_build_object('operationId', operation_id, 'hostId', bench_uuid('host'), 'launchedAt', at)
            WHEN phase IN (0, 3) THEN jsonb_build_object('operationId', operation_id, 'kind', CASE WHEN phase = 0 THEN 'STOP' ELSE 'START' END, 'at', at)
            WHEN phase IN (2, 5) THEN jsonb_build_object('operationId', operation_id, 'outcome', 'SUCCEEDED', 'at', at)
            ELSE jsonb_build_object('operationId', operation_id, 'at', at) END,
       '{"actor":"bench"}'::jsonb
     FROM e ORDER BY ${byEvent ? 'k, i' : 'CASE WHEN k < 2 THEN 0 ELSE (k - 2) / 3 + 1 END, i, k'}`,
    [instances],
  );
  await db.exec('ANALYZE events');
}

async function main() {
  const server: PostgresServer | undefined = process.env.BENCH_DATABASE_URL ? undefined : await startPostgres();
  const db = await openDatabase({ url: await createDatabase(process.env.BENCH_DATABASE_URL ?? server!.url, 'metering_bench') });
  try {
    const store = await openEventStore(db, eventRegistry);
    const instances = Math.ceil(TOTAL_EVENTS / PER_INSTANCE);
    say(`metering benchmark on PostgreSQL: ${instances} instances, ${instances * PER_INSTANCE} lifecycle events`);
    const loadStart = performance.now();
    await loadLog(db, instances);
    say(`bulk load                                ${((performance.now() - loadStart) / 1000).toFixed(1).padStart(9)} s`);

    // 1. The baseline: the store's catch-up read of the same log, in pages.
    let read = 0;
    let after: Checkpoint | undefined;
    const readStart = performance.now();
    for (;;) {
      const page = await store.readAll({ after, limit: PAGE, ...(after ? { after } : {}) });
      if (page.length === 0) break;
      read += page.length;
      const last = page.at(-1)!;
      after = { transactionId: last.transactionId, position: last.position };
    }
    const catchupPerSec = read / ((performance.now() - readStart) / 1000);
    say(`catch-up readAll (${read} events)        ${catchupPerSec.toFixed(0).padStart(9)} /s`);

    // 2. The consumer folding the whole log from scratch (a rebuild: the catch-up path, in pages).
    const rt = { db, store } as unknown as Runtime;
    const foldStart = performance.now();
    const rebuilt = await rebuildProjection(rt, 'usage');
    const eventsPerSec = rebuilt.events / ((performance.now() - foldStart) / 1000);
    const [{ records }] = (await db.query<{ records: number }>('SELECT count(*)::int AS records FROM usage_records')) as [{ records: number }];
    say(`usage consumer fold (${rebuilt.events} events) ${eventsPerSec.toFixed(0).padStart(9)} /s  (${records} records)`);
    const meteringRatio = eventsPerSec / catchupPerSec;
    say(`fold / catch-up                           ${meteringRatio.toFixed(2).padStart(9)}   (target >= 0.3)`);

    // 3. The pollsters' writes: rounds of one host's 100 VMs, each round one statement, as sampleHost stores them.
    await migrateProjections(db);
    const vms = Array.from({ length: 100 }, () => ({ id: randomUUID(), projectId: randomUUID() }));
    const ROUNDS = 200;
    let stored = 0;
    const sampleStart = performance.now();
    for (let round = 0; round < ROUNDS; round++) {
      const at = new Date(Date.parse('2026-11-01T00:00:00Z') + round * 60_000).toISOString();
      const previousAt = new Date(Date.parse(at) - 60_000).toISOString();
      const rows = vms.flatMap((vm, i) =>
        samplesOf(vm.id, { at, vcpus: 1, cpuNs: (round + 1) * 6e9 * (i % 10) / 10, memoryMb: 256, diskReadBytes: round * 4096, diskWriteBytes: round * 1024 },
          round > 0 ? { at: previousAt, cpuNs: round * 6e9 * (i % 10) / 10 } : undefined).map((x) => ({ ...x, projectId: vm.projectId })),
      );
      await storeSamples(db, rows);
      stored += rows.length;
    }
    const samplesPerSec = stored / ((performance.now() - sampleStart) / 1000);
    say(`samples stored (${stored}, 100 VMs a round) ${samplesPerSec.toFixed(0).padStart(9)} /s`);

    if (json) {
      console.log(JSON.stringify({
        backend: 'postgres',
        interleave: byEvent ? 'event' : 'action',
        events: rebuilt.events,
        records,
        catchupPerSec: Math.round(catchupPerSec),
        eventsPerSec: Math.round(eventsPerSec),
        meteringRatio: Number(meteringRatio.toFixed(3)),
        samplesPerSec: Math.round(samplesPerSec),
      }));
    }
  } finally {
    await db.close();
    await server?.stop();
  }
}

await main();
