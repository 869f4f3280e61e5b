import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventRegistry, instanceStream } from '../domain/events.js';
import { checkpointFromString, type TypedNewEvent } from '../eventstore/index.js';
import { migrateProjections, rebuildProjection, startProjections, waitForProjections } from '../projections/index.js';
import { usageFor } from '../schema/usageReads.js';
import { ensureMeteringClock } from '../server/meteringClock.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker } from '../server/worker.js';
import { testRuntime } from './support/projectionFixtures.js';
import { dumpUsage, FLAVOR, usageTimeline } from './support/usageTimeline.js';

type NewEvent = TypedNewEvent<typeof eventRegistry>;
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const HOUR = 3_600_000;
const DAY = Date.parse('2026-11-20T00:00:00.000Z');
const admin = { tokenId: 'test-admin', projectId: randomUUID(), role: 'ADMIN' as const };

/** A small seeded generator (mulberry32), so a failing day can be replayed exactly. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Life {
  instanceId: string;
  projectId: string;
  events: NewEvent[];
  runningMs: number;
  allocatedMs: number;
}

/**
 * One instance's day: booted at a random minute, stopped and started a few times, deleted or left
 * running. The hours it should be billed are summed here from the same choices, by plain interval
 * arithmetic and clipped at the end of the day, independently of the consumer.
 */
function lifeOf(rand: () => number, projectId: string, dayStart: number): Life {
  const instanceId = randomUUID();
  const dayEnd = dayStart + 24 * HOUR;
  const minute = (ms: number) => new Date(Math.floor(ms / 60_000) * 60_000).toISOString();
  const meta = { actor: 'test' };
  const e = (type: NewEvent['type'], data: unknown) => ({ id: randomUUID(), type, data, metadata: meta }) as NewEvent;
  let at = dayStart + Math.floor(rand() * 20 * 60) * 60_000;
  const bootAt = at;
  const op = randomUUID();
  const events: NewEvent[] = [
    e('InstanceBootRequested', { instanceId, projectId, name: 'vm', flavor: FLAVOR, imageId: randomUUID(), networkId: null, operationId: op, requestedAt: minute(at) }),
    e('InstanceLaunched', { operationId: op, hostId: randomUUID(), launchedAt: minute(at) }),
    e('InstanceTaskFinished', { operationId: op, outcome: 'SUCCEEDED', at: minute(at) }),
  ];
  let running = true;
  let runningSince = at;
  let runningMs = 0;
  let deletedAt: number | undefined;
  for (;;) {
    at += Math.floor(1 + rand() * 300) * 60_000;
    if (at >= dayEnd) break;
    const operationId = randomUUID();
    const roll = rand();
    const kind: 'DELETE' | 'STOP' | 'START' = roll < 0.15 ? 'DELETE' : running ? 'STOP' : 'START';
    const type = kind === 'DELETE' ? 'InstanceDeleted' : kind === 'STOP' ? 'InstanceStopped' : 'InstanceStarted';
    events.push(e('InstanceTaskStarted', { operationId, kind, at: minute(at) }), e(type, { operationId, at: minute(at) }), e('InstanceTaskFinished', { operationId, outcome: 'SUCCEEDED', at: minute(at) }));
    if (running) runningMs += at - runningSince;
    if (kind === 'DELETE') {
      deletedAt = at;
      running = false;
      break;
    }
    running = kind === 'START';
    runningSince = at;
  }
  if (running) runningMs += dayEnd - runningSince;
  return { instanceId, projectId, events, runningMs, allocatedMs: (deletedAt ?? dayEnd) - bootAt };
}

async function appendLives(rt: Runtime, lives: Life[]) {
  for (let i = 0; i < lives.length; i += 20) {
    await Promise.all(lives.slice(i, i + 20).map((l) => rt.store.append(instanceStream(l.instanceId), l.events, { expectedVersion: 'noStream' })));
  }
}

describe('metering at scale and across a crash', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await testRuntime('metering_consumer');
  });
  afterAll(async () => {
    await rt?.close();
  });

  it('1,000 instances across 10 projects over a simulated day: each project total equals the hours computed independently', async () => {
    const timeline = usageTimeline(rt);
    const projects = await Promise.all(Array.from({ length: 10 }, () => timeline.project()));
    const rand = random(20261120);
    const lives = Array.from({ length: 1000 }, (_, i) => lifeOf(rand, projects[i % 10]!, DAY));
    await appendLives(rt, lives);
    // The clock's tick just after midnight closes the day for those still running.
    await timeline.tick(new Date(DAY + 24 * HOUR + 30_000).toISOString());
    await rebuildProjection(rt, 'usage');
    await rebuildProjection(rt, 'identity');

    const window = { from: new Date(DAY).toISOString(), to: new Date(DAY + 24 * HOUR).toISOString() };
    for (const projectId of projects) {
      const report = (await usageFor(rt, admin, { ...window, projectId }))!;
      const mine = lives.filter((l) => l.projectId === projectId);
      const expected = {
        RUNNING_VM: mine.reduce((s, l) => s + l.runningMs, 0) / HOUR,
        ALLOCATED_VM: mine.reduce((s, l) => s + l.allocatedMs, 0) / HOUR,
      };
      const totals = Object.fromEntries(report.totals.map((x) => [x.usageType, x.quantity]));
      expect(totals.RUNNING_VM).toBeCloseTo(expected.RUNNING_VM, 6);
      expect(totals.ALLOCATED_VM).toBeCloseTo(expected.ALLOCATED_VM, 6);
    }
    // Every hour is closed: nothing of that day is left open.
    const [open] = await rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_open WHERE since < $1', [new Date(DAY + 24 * HOUR)]);
    expect(open!.n).toBe(0);
  });

  it('`stratus metering` SIGKILLed mid-catch-up and started again: no record lost or doubled, the same as a clean rebuild', async () => {
    const krt = await testRuntime('metering_kill');
    try {
      const timeline = usageTimeline(krt);
      const projects = await Promise.all(Array.from({ length: 4 }, () => timeline.project()));
      const rand = random(7);
      await appendLives(krt, Array.from({ length: 600 }, (_, i) => lifeOf(rand, projects[i % 4]!, DAY)));
      await timeline.tick(new Date(DAY + 24 * HOUR + 30_000).toISOString());
      const [head] = await krt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM events');

      await migrateProjections(krt.db);
      const consumer = () => meteringProcess(krt);
      const first = consumer();
      // Wait until it has committed part of the log, then kill it without warning.
      let partway: string | null = null;
      while (partway === null) {
        if (first.proc.exitCode !== null) throw new Error(`stratus metering exited early:\n${first.output()}`);
        const [row] = await krt.db.query<{ checkpoint: string | null }>(`SELECT checkpoint FROM projection_checkpoints WHERE name = 'usage'`);
        partway = row?.checkpoint ?? null;
        if (partway === null) await new Promise((r) => setTimeout(r, 20));
      }
      first.proc.kill('SIGKILL');
      await first.exited;
      const [stoppedAt] = await krt.db.query<{ checkpoint: string }>(`SELECT checkpoint FROM projection_checkpoints WHERE name = 'usage'`);
      const [{ applied }] = (await krt.db.query<{ applied: number }>(
        `SELECT count(*)::int AS applied FROM events WHERE (transaction_id, position) <= ($1::xid8, $2::bigint)`,
        [checkpointFromString(stoppedAt!.checkpoint).transactionId, checkpointFromString(stoppedAt!.checkpoint).position],
      )) as [{ applied: number }];
      expect(applied).toBeGreaterThan(0);
      expect(applied).toBeLessThan(head!.n);

      const second = consumer();
      try {
        await waitForProjections(krt, undefined, { names: ['usage'], timeoutMs: 300_000 });
      } finally {
        second.proc.kill('SIGTERM');
        await second.exited;
      }
      const afterCrash = await dumpUsage(krt);
      expect(afterCrash.records.length).toBeGreaterThan(600);
      await rebuildProjection(krt, 'usage');
      expect(await dumpUsage(krt)).toEqual(afterCrash);
    } finally {
      await krt.close();
    }
  }, 600_000);

  it('the metering clock, a Temporal workflow, ticks and closes the hours of an instance that is still running', async () => {
    const timeline = usageTimeline(rt);
    const projectId = await timeline.project();
    const bootAt = new Date(Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR + 20 * 60_000).toISOString();
    const id = await timeline.boot(projectId, bootAt);
    const runner = await startProjections(rt, ['usage']);
    const worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    const workflowId = `metering-clock-${randomUUID()}`;
    try {
      await ensureMeteringClock(rt, { periodMs: 500, graceMs: 0 }, workflowId);
      // A second start joins the running clock instead of failing or starting another.
      await ensureMeteringClock(rt, { periodMs: 500, graceMs: 0 }, workflowId);
      await expect
        .poll(async () => (await rt.db.query('SELECT 1 FROM usage_records WHERE resource_id = $1', [id])).length, { timeout: 120_000, interval: 200 })
        .toBe(4);
      const ticks = await rt.db.query<{ data: { at: string } }>(`SELECT data FROM events WHERE type = 'UsageClockTicked' AND stream_id = $1`, [
        `meteringclock-${new Date(Math.floor(Date.now() / HOUR) * HOUR).toISOString()}`,
      ]);
      expect(ticks.length).toBe(1);
      const rows = await rt.db.query<{ usage_type: string; start_at: Date; end_at: Date }>(
        'SELECT usage_type, start_at, end_at FROM usage_records WHERE resource_id = $1 ORDER BY usage_type, start_at',
        [id],
      );
      const h = (n: number) => new Date(Math.floor(Date.parse(bootAt) / HOUR) * HOUR + n * HOUR).toISOString();
      expect(rows.map((r) => [r.usage_type, r.start_at.toISOString(), r.end_at.toISOString()])).toEqual([
        ['ALLOCATED_VM', bootAt, h(1)],
        ['ALLOCATED_VM', h(1), h(2)],
        ['RUNNING_VM', bootAt, h(1)],
        ['RUNNING_VM', h(1), h(2)],
      ]);
    } finally {
      await rt.temporal.workflow.getHandle(workflowId).terminate().catch(() => {});
      await worker.shutdown();
      await runner.stop();
    }
  }, 300_000);
});

/** `stratus metering` as its own process, against the test's database, to be SIGKILLed. */
function meteringProcess(rt: Runtime): { proc: ChildProcess; output: () => string; exited: Promise<void> } {
  const proc = spawn(process.execPath, ['cli/bin.mjs', 'metering'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      DATABASE_URL: rt.config.databaseUrl,
      TEMPORAL_ADDRESS: rt.config.temporalAddress,
      // No worker polls this queue: the clock it starts never ticks, so only the backlog is folded.
      STRATUS_TASK_QUEUE: `metering-kill-${randomUUID()}`,
      STRATUS_SSH_KEY: rt.config.sshKeyPath,
      STRATUS_DATA_DIR: rt.config.dataDir,
      STRATUS_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return { proc, output: () => output, exited };
}
