/**
 * Boot throughput and latency, end to end: the bootInstance command (what the mutation calls) until
 * the instance reads RUNNING in the read model, against real PostgreSQL, a Temporal dev server, the
 * worker, the projections and a `sim` host agent with zero latency. Compared with E's bare workflow
 * (the same number of no-op activities, the same worker settings, in the same run) to show what the
 * engine costs by itself: engineRatio = c32BootsPerSec / bareWorkflowsPerSec.
 *
 *   npm run bench:boot            figures and where a boot's time goes
 *   npm run bench:boot -- --json  exactly one JSON line on stdout
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flavorIdFor } from '../domain/catalog.js';
import { CHANGES_CHANNEL, startProjections, type Change } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { loadOrCreateControllerKey } from '../server/controllerKey.js';
import { startLocalHostAgent } from '../server/localHostAgent.js';
import { createRuntime, type Runtime } from '../server/runtime.js';
import { startTemporalDevServer } from '../server/temporalDevServer.js';
import { routeTemporalLogs } from '../server/temporalLogs.js';
import { startWorker } from '../server/worker.js';
import { runBareWorkflow } from './baseline.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';

const json = process.argv.includes('--json');
const C1_BOOTS = Number(process.env.BENCH_C1_BOOTS ?? 40);
const C32_BOOTS = Number(process.env.BENCH_C32_BOOTS ?? 320);
const CONCURRENCY = 32;
/** The concurrency-32 boots and the bare workflows alternate this many times. */
const ROUNDS = 4;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/**
 * The baseline runs one ordinary activity for each step of this bench's boot: schedule, allocateAddress,
 * plugPort, createVm, startVm, recordRunning (workflows/bootInstance.ts; a registered image has nothing
 * to fetch). The boot itself makes fewer round trips through the engine: its three event-only steps are
 * local activities, and plugPort, createVm and startVm run as one activity (setUpOnHost).
 */
const BOOT_ACTIVITIES = Number(process.env.BENCH_BOOT_ACTIVITIES ?? 6);
const say = (m: string) => (json ? process.stderr.write(m + '\n') : console.log(m));

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

const ROLES = ['controller', 'temporal', 'postgres', 'hostagent'] as const;
type Role = (typeof ROLES)[number];
const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

/**
 * CPU time so far of each process this bench runs, by role, in ms: this process (worker, projections,
 * commands), the Temporal dev server, PostgreSQL's processes (every `postgres` process on the machine:
 * run it where no other PostgreSQL runs) and the host agent. A process that exits between two readings
 * is not counted; none of these do during a run.
 */
function cpuByRole(): Record<Role, number> {
  const totals: Record<Role, number> = { controller: 0, temporal: 0, postgres: 0, hostagent: 0 };
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    let cmdline: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ms = (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
    const role: Role | undefined =
      Number(pid) === process.pid ? 'controller'
      : cmdline.includes('start-dev') ? 'temporal'
      : comm === 'postgres' ? 'postgres'
      : cmdline.includes('hostagent') ? 'hostagent'
      : undefined;
    if (role) totals[role] += ms;
  }
  return totals;
}
const cpuSince = (before: Record<Role, number>): Record<Role, number> => {
  const now = cpuByRole();
  return Object.fromEntries(ROLES.map((r) => [r, now[r] - before[r]])) as Record<Role, number>;
};
const addCpu = (into: Record<Role, number>, more: Record<Role, number>) => ROLES.forEach((r) => (into[r] += more[r]));
const perItem = (cpu: Record<Role, number>, n: number) => {
  const out: Record<string, number> = Object.fromEntries(ROLES.map((r) => [r, round(cpu[r] / n)]));
  out.total = round(ROLES.reduce((t, r) => t + cpu[r], 0) / n);
  return out;
};

/** Resolves when an instance reads RUNNING in rm_instances, woken by the projections' NOTIFY. */
function runningWatcher(rt: Runtime) {
  const waiting = new Map<string, () => void>();
  const check = async (id: string) => {
    const done = waiting.get(id);
    if (!done) return;
    const rows = await rt.db.query<{ state: string }>('SELECT state FROM rm_instances WHERE id = $1', [id]);
    if (rows[0]?.state === 'RUNNING') {
      waiting.delete(id);
      done();
    } else if (rows[0]?.state === 'ERROR') {
      throw new Error(`instance ${id} went to ERROR`);
    }
  };
  const unlisten = rt.db.listen(CHANGES_CHANNEL, (payload) => {
    const change = JSON.parse(payload) as Change;
    if (change.kind === 'instance') void check(change.id).catch((e: unknown) => say(String(e)));
  });
  return {
    until: (id: string) =>
      new Promise<void>((resolve) => {
        waiting.set(id, resolve);
        // The change may have been committed before we started waiting.
        void check(id);
      }),
    close: async () => (await unlisten)(),
  };
}

async function main() {
  routeTemporalLogs();
  const pg = await startPostgres();
  const dir = await mkdtemp(join(tmpdir(), 'stratus-bench-boot-'));
  const temporal = await startTemporalDevServer({ dataDir: dir, port: 0, say });
  const key = loadOrCreateControllerKey(join(dir, 'controller_ed25519'));
  const agent = await startLocalHostAgent({
    stateDir: join(dir, 'hostagent'),
    controllerPublicKey: key.publicKey,
    driver: 'sim',
    driverOptions: { vcpus: 100_000, memoryMb: 100_000_000, diskGb: 10_000_000 },
  });
  const taskQueue = `bench-boot-${randomUUID()}`;
  const rt = await createRuntime({
    databaseUrl: await createDatabase(pg.url, `bench_boot_${Date.now()}`),
    temporalAddress: temporal.address,
    temporalNamespace: 'default',
    taskQueue,
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    sshKeyPath: join(dir, 'controller_ed25519'),
  });
  const worker = await startWorker(rt, { taskQueue });
  const projections = await startProjections(rt);
  const watcher = runningWatcher(rt);
  try {
    const caller = bootstrapAdminCaller;
    await commands.registerHost(rt, caller, { name: 'bench', address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
    await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 });
    const image = await commands.registerImage(rt, caller, { name: 'cirros-0.6', format: 'qcow2', sizeBytes: 21_430_272 });
    const flavorId = flavorIdFor('m1.tiny');
    const imageId = image.image.id;
    // More boots than the default /24 holds: a /16 of their own.
    const { network } = await commands.createNetwork(rt, caller, { name: 'bench', cidr: '10.64.0.0/16', external: false });
    // Placement reads rm_hosts: wait until the projections have the host.
    for (let i = 0; i < 200 && (await rt.db.query('SELECT 1 FROM rm_hosts')).length === 0; i++) await new Promise((r) => setTimeout(r, 50));

    let n = 0;
    const operationIds: string[] = [];
    const bootOne = async (): Promise<number> => {
      const t0 = performance.now();
      const { operation, instance } = await commands.bootInstance(rt, caller, { name: `bench-${n++}`, flavorId, imageId, networkId: network.id });
      operationIds.push(operation.id);
      await watcher.until(instance!.id);
      return performance.now() - t0;
    };
    const run = async (total: number, concurrency: number) => {
      const latencies: number[] = [];
      let left = total;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (left-- > 0) latencies.push(await bootOne());
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      latencies.sort((a, b) => a - b);
      return { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), perSec: round(total / seconds), seconds };
    };

    await run(5, 1); // warm-up: worker caches, SSH connection, JIT
    operationIds.length = 0;
    const c1 = await run(C1_BOOTS, 1);
    say(`concurrency 1: ${C1_BOOTS} boots, p50 ${c1.p50} ms, p99 ${c1.p99} ms, ${c1.perSec} boots/s`);
    const stepTimes = await stepBreakdown(rt, operationIds.splice(0));
    // The floor under c1P50Ms: the engine alone, one workflow at a time, with as many no-op activities.
    const bareC1: number[] = [];
    for (let i = 0; i < C1_BOOTS; i++) {
      const t0 = performance.now();
      await runBareWorkflow(rt, taskQueue, `bench-bare-c1-${randomUUID()}`, BOOT_ACTIVITIES);
      bareC1.push(performance.now() - t0);
    }
    bareC1.sort((a, b) => a - b);
    const bareC1P50Ms = round(percentile(bareC1, 50));
    say(`bare workflow at concurrency 1 (${BOOT_ACTIVITIES} no-op activities): p50 ${bareC1P50Ms} ms`);
    // Boots and the engine alone (the same number of workflows, each with as many no-op activities as a
    // boot) alternate in rounds, so a burst of load on this noisy machine falls on both sides alike.
    const bare = async (total: number) => {
      let left = total;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (left-- > 0) {
            await runBareWorkflow(rt, taskQueue, `bench-bare-${randomUUID()}`, BOOT_ACTIVITIES);
          }
        }),
      );
      return (performance.now() - t0) / 1000;
    };
    const perRound = Math.ceil(C32_BOOTS / ROUNDS);
    const c32Rounds: Awaited<ReturnType<typeof run>>[] = [];
    let bareSeconds = 0;
    const bootCpu: Record<Role, number> = { controller: 0, temporal: 0, postgres: 0, hostagent: 0 };
    const bareCpu: Record<Role, number> = { ...bootCpu };
    for (let r = 0; r < ROUNDS; r++) {
      let cpu0 = cpuByRole();
      c32Rounds.push(await run(perRound, CONCURRENCY));
      addCpu(bootCpu, cpuSince(cpu0));
      cpu0 = cpuByRole();
      bareSeconds += await bare(perRound);
      addCpu(bareCpu, cpuSince(cpu0));
    }
    // Where the concurrency-32 time goes: CPU per boot and per baseline workflow, by process. The two
    // cores are saturated in both, so the ratio of these totals is about the inverse of engineRatio.
    const cpuPerBootMs = perItem(bootCpu, perRound * ROUNDS);
    const cpuPerBareMs = perItem(bareCpu, perRound * ROUNDS);
    const c32 = {
      p50: median(c32Rounds.map((x) => x.p50)),
      p99: Math.max(...c32Rounds.map((x) => x.p99)),
      perSec: round((perRound * ROUNDS) / c32Rounds.reduce((t, x) => t + x.seconds, 0)),
    };
    say(`concurrency ${CONCURRENCY}: ${perRound * ROUNDS} boots in ${ROUNDS} rounds, p50 ${c32.p50} ms (median of rounds), p99 ${c32.p99} ms (worst round), ${c32.perSec} boots/s`);
    const bareWorkflowsPerSec = round((perRound * ROUNDS) / bareSeconds);
    say(`bare workflows (${BOOT_ACTIVITIES} no-op activities) at concurrency ${CONCURRENCY}: ${bareWorkflowsPerSec}/s`);
    const engineRatio = round(c32.perSec / bareWorkflowsPerSec, 2);
    say(`engineRatio ${engineRatio} (target >= 0.7), c1P50Ms ${c1.p50} (target <= 250)`);
    say(`CPU ms per boot at concurrency ${CONCURRENCY}, by process: ${JSON.stringify(cpuPerBootMs)}`);
    say(`CPU ms per baseline workflow, by process: ${JSON.stringify(cpuPerBareMs)}`);
    say(`where a concurrency-1 boot's time goes (mean ms per step, from the operation's steps): ${JSON.stringify(stepTimes)}`);

    if (json) {
      console.log(
        JSON.stringify({
          c1P50Ms: c1.p50,
          c1P99Ms: c1.p99,
          c1BootsPerSec: c1.perSec,
          bareC1P50Ms,
          c32P50Ms: c32.p50,
          c32P99Ms: c32.p99,
          c32BootsPerSec: c32.perSec,
          bareWorkflowsPerSec,
          engineRatio,
          stepMeanMs: stepTimes,
          cpuPerBootMs,
          cpuPerBareMs,
        }),
      );
    }
  } finally {
    const stopping: Array<[string, () => Promise<unknown>]> = [
      ['watcher', () => watcher.close()],
      ['projections', () => projections.stop()],
      ['worker', () => worker.stop()],
      ['runtime', () => rt.close()],
      ['agent', () => agent.stop()],
      ['temporal', () => temporal.stop()],
      ['postgres', () => pg.stop()],
      ['data dir', () => rm(dir, { recursive: true, force: true })],
    ];
    for (const [name, stop] of stopping) {
      const t0 = performance.now();
      // A stop that hangs must not hang the bench: its figures are already printed.
      const limit = new Promise((resolve) => setTimeout(() => resolve(say(`stopping ${name} gave up after 20 s`)), 20_000).unref());
      await Promise.race([stop().catch((e: unknown) => say(`stopping ${name} failed: ${String(e)}`)), limit]);
      if (performance.now() - t0 > 2000) say(`stopping ${name} took ${Math.round(performance.now() - t0)} ms`);
    }
  }
}

/** Mean time per operation step, plus the gaps between steps and before the first (queueing, projection lag). */
async function stepBreakdown(rt: Runtime, operationIds: string[]) {
  const rows = await rt.db.query<{ steps: Array<{ name: string; startedAt?: string; finishedAt?: string }>; created_at: Date }>(
    'SELECT steps, created_at FROM rm_operations WHERE id = ANY($1)',
    [operationIds],
  );
  const sums: Record<string, number> = {};
  const add = (k: string, ms: number) => (sums[k] = (sums[k] ?? 0) + ms);
  for (const row of rows) {
    let previous = new Date(row.created_at).getTime();
    for (const s of row.steps) {
      if (!s.startedAt || !s.finishedAt) continue;
      const started = Date.parse(s.startedAt);
      const finished = Date.parse(s.finishedAt);
      add(`before ${s.name}`, started - previous);
      add(s.name, finished - started);
      previous = finished;
    }
  }
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, round(v / Math.max(1, rows.length))]));
}

await main();
process.exit(0);
