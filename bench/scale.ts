/**
 * Placement at scale: does a boot schedule as fast on 1,000 hosts as on 10? Two clouds, each in a
 * database of its own, one with 10 sim hosts and one with 1,000 (one agent process serving them all,
 * bench/simFleet.ts), real PostgreSQL, a Temporal dev server, the worker as its own process (`stratus
 * worker`, so its memory is its own) and the projections. Each cloud boots BENCH_SCALE_BOOTS instances
 * (2,000) at concurrency 32. Then, on the cloud the boots filled, placement alone (claimHostCapacity,
 * one at a time) gives placementP50Ms; scheduleStepP50Ms is the boots' whole `schedule` step as the
 * operations record it (read the instance, place, record the placement), contended at concurrency 32.
 * plugPortStep is the boots' `plugPort` step; membershipRounds and membershipSettleMs are the project's
 * membership fan-out: its rounds for all the boots, and how long after the last boot every host had
 * every member. BENCH_SCALE_FILL (20,000) then fills the largest cloud with claims and times placement again.
 *
 *   npm run bench:scale            figures
 *   npm run bench:scale -- --json  exactly one JSON line on stdout
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { membershipWorkflowId } from '../activities/membership.js';
import { claimHostCapacity, releaseHostClaims } from '../activities/placement.js';
import { flavorIdFor } from '../domain/catalog.js';
import { CHANGES_CHANNEL, startProjections, type Change } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { loadOrCreateControllerKey } from '../server/controllerKey.js';
import { createRuntime, type Runtime } from '../server/runtime.js';
import { startTemporalDevServer } from '../server/temporalDevServer.js';
import { routeTemporalLogs } from '../server/temporalLogs.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';

const json = process.argv.includes('--json');
const BOOTS = Number(process.env.BENCH_SCALE_BOOTS ?? 2000);
const SIZES = (process.env.BENCH_SCALE_HOSTS ?? '10,1000').split(',').map(Number);
const CONCURRENCY = 32;
const PLACEMENTS = Number(process.env.BENCH_SCALE_PLACEMENTS ?? 300);
/**
 * After its boots, the largest cloud is filled to this many claimed instances (claims only: the same
 * claimHostCapacity a boot's schedule step makes, with no VM behind them) and placement is timed again:
 * the issue's cloud of 1,000 hosts and 20,000 instances. 0 leaves it out.
 */
const FILL = Number(process.env.BENCH_SCALE_FILL ?? 20_000);
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const say = (m: string) => (json ? process.stderr.write(m + '\n') : console.log(m));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Peak resident memory of a process, from /proc (VmHWM), in MB. */
const peakRssMb = (pid: number | 'self') => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
};

function child(args: string[], env: NodeJS.ProcessEnv): { proc: ChildProcess; firstLine: Promise<string>; stop(): Promise<void> } {
  const proc = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, STRATUS_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const firstLine = new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
  // Only the fleet prints a line; the worker exiting at the end must not count as an unhandled rejection.
  firstLine.catch(() => {});
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    firstLine,
    stop: async () => {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Resolves when an instance reads RUNNING in rm_instances, woken by the projections' NOTIFY. */
function runningWatcher(rt: Runtime) {
  const waiting = new Map<string, (state: string) => void>();
  const check = async (id: string) => {
    const done = waiting.get(id);
    if (!done) return;
    const [row] = await rt.db.query<{ state: string }>('SELECT state FROM rm_instances WHERE id = $1', [id]);
    if (row?.state === 'RUNNING' || row?.state === 'ERROR') {
      waiting.delete(id);
      done(row.state);
    }
  };
  const unlisten = rt.db.listen(CHANGES_CHANNEL, (payload) => {
    const change = JSON.parse(payload) as Change;
    if (change.kind === 'instance') void check(change.id);
  });
  return {
    until: (id: string) =>
      new Promise<string>((resolve) => {
        waiting.set(id, resolve);
        void check(id);
      }),
    close: async () => (await unlisten)(),
  };
}

async function cloudOf(hosts: number, pgUrl: string, temporalAddress: string, dir: string) {
  const sshKeyPath = join(dir, `controller_${hosts}`);
  const key = loadOrCreateControllerKey(sshKeyPath);
  const authorizedKeys = join(dir, `authorized_keys_${hosts}`);
  await writeFile(authorizedKeys, key.publicKey.trim() + '\n');
  const fleet = child(['--import', 'tsx', 'bench/simFleet.ts', join(dir, `fleet_${hosts}`), authorizedKeys, String(hosts)], {});
  const { fingerprint, ports } = JSON.parse(await fleet.firstLine) as { fingerprint: string; ports: number[] };
  const taskQueue = `bench-scale-${randomUUID()}`;
  const databaseUrl = await createDatabase(pgUrl, `bench_scale_${hosts}_${Date.now()}`);
  const rt = await createRuntime({
    databaseUrl,
    temporalAddress,
    temporalNamespace: 'default',
    taskQueue,
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    sshKeyPath,
  });
  const worker = child(['cli/bin.mjs', 'worker'], {
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporalAddress,
    STRATUS_TASK_QUEUE: taskQueue,
    STRATUS_SSH_KEY: sshKeyPath,
    STRATUS_DATA_DIR: dir,
    // Placement is what this bench measures. Health checks (on by default, every 10 s per host) would
    // add 100 probes a second at 1,000 hosts: on these two cores, most of the engine's throughput.
    STRATUS_HOST_HEALTH: 'off',
  });
  const projections = await startProjections(rt);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < ports.length) {
        const i = next++;
        await commands.registerHost(rt, bootstrapAdminCaller, { name: `sim-${i}`, address: '127.0.0.1', port: ports[i]!, hostKeyFingerprint: fingerprint });
      }
    }),
  );
  say(`${hosts} hosts registered in ${round((performance.now() - t0) / 1000)} s`);
  return {
    rt,
    worker,
    stop: async () => {
      // Both clouds share one Temporal and one project id: the next cloud's boots must start a fan-out
      // of their own on their own task queue, not signal this one's, whose worker is gone.
      await rt.temporal.workflow.getHandle(membershipWorkflowId(bootstrapAdminCaller.projectId)).terminate('cloud stopped').catch(() => {});
      await projections.stop();
      await worker.stop();
      await rt.close();
      await fleet.stop();
    },
  };
}

async function bootMany(rt: Runtime, total: number) {
  const caller = bootstrapAdminCaller;
  await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 });
  const image = await commands.registerImage(rt, caller, { name: 'cirros-0.6', format: 'qcow2', sizeBytes: 21_430_272 });
  const flavorId = flavorIdFor('m1.tiny');
  // Every boot takes an address. The boots spread over 16 networks, as a cloud's tenants would: one
  // network's IPAM decides on its whole stream, so a single network taking all 2,000 addresses would
  // measure IPAM's growth, not placement's.
  const networks: { id: string }[] = [];
  for (let i = 0; i < 16; i++) networks.push((await commands.createNetwork(rt, caller, { name: `scale-${i}`, cidr: `10.${64 + i}.0.0/24`, external: false })).network);
  const watcher = runningWatcher(rt);
  const operationIds: string[] = [];
  let n = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (n < total) {
        const i = n++;
        const { operation, instance } = await commands.bootInstance(rt, caller, { name: `scale-${i}`, flavorId, imageId: image.image.id, networkId: networks[i % networks.length]!.id });
        operationIds.push(operation.id);
        if ((await watcher.until(instance!.id)) !== 'RUNNING') errors++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await watcher.close();
  // The membership fan-out (workflows/groupMembership.ts) runs on after the last boot: how long until
  // every host has every member, and in how many rounds it got there.
  const fanOut = rt.temporal.workflow.getHandle(membershipWorkflowId(caller.projectId));
  const state = () => fanOut.query<{ rounds: number; changed: string[]; behind: string[]; pushing: boolean }>('membershipState');
  // A query waits for the worker to take a workflow task; a worker busy with a round at 1,000 hosts can
  // miss the query's deadline, which is no answer, not a failure: asked again, for up to ten minutes.
  const settleT0 = performance.now();
  let membershipRounds = NaN;
  let membershipSettleMs = NaN;
  while (performance.now() - settleT0 < 600_000) {
    const s = await state().catch((err: unknown) => (say(`membership state not read: ${(err as Error).message}`), undefined));
    if (s && !s.pushing && s.changed.length === 0 && s.behind.length === 0) {
      membershipSettleMs = Math.round(performance.now() - settleT0);
      membershipRounds = s.rounds;
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const rows = await rt.db.query<{ steps: Array<{ name: string; startedAt?: string; finishedAt?: string }> }>(
    'SELECT steps FROM rm_operations WHERE id = ANY($1)',
    [operationIds],
  );
  const stepMs = (name: string) =>
    rows
      .map((r) => r.steps.find((s) => s.name === name))
      .flatMap((s) => (s?.startedAt && s.finishedAt ? [Date.parse(s.finishedAt) - Date.parse(s.startedAt)] : []))
      .sort((a, b) => a - b);
  const placement = stepMs('schedule');
  const plug = stepMs('plugPort');
  return {
    bootsPerSec: round(total / seconds),
    scheduleStepP50Ms: percentile(placement, 50),
    scheduleStepP99Ms: percentile(placement, 99),
    plugPortStepP50Ms: percentile(plug, 50),
    plugPortStepP99Ms: percentile(plug, 99),
    membershipRounds,
    membershipSettleMs,
    errors,
  };
}

/**
 * Placement alone, on the cloud as the boots left it (every instance's claim in place): claimHostCapacity
 * one at a time, each claim given back after, timed in this process with a sub-millisecond clock.
 */
async function placementAlone(rt: Runtime, claims: number) {
  const metadata = { actor: 'bench', operationId: randomUUID() };
  const times: number[] = [];
  for (let i = 0; i < claims; i++) {
    const instanceId = randomUUID();
    const t0 = performance.now();
    await claimHostCapacity(rt, { instanceId, operationId: metadata.operationId, resources: { vcpus: 1, memoryMb: 512, diskGb: 1 }, key: `bench:${instanceId}`, metadata });
    times.push(performance.now() - t0);
    await releaseHostClaims(rt, { instanceId, key: `bench-release:${instanceId}`, metadata });
  }
  times.sort((a, b) => a - b);
  return { placementP50Ms: round(percentile(times, 50), 2), placementP99Ms: round(percentile(times, 99), 2) };
}

/** Claims capacity for `count` more instances, CONCURRENCY at a time, kept: the cloud is left holding them. */
async function fillWithClaims(rt: Runtime, count: number): Promise<{ claimsPerSec: number }> {
  const metadata = { actor: 'bench', operationId: randomUUID() };
  let left = count;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) {
        const instanceId = randomUUID();
        await claimHostCapacity(rt, { instanceId, operationId: metadata.operationId, resources: { vcpus: 1, memoryMb: 512, diskGb: 1 }, key: `bench-fill:${instanceId}`, metadata });
      }
    }),
  );
  return { claimsPerSec: round(count / ((performance.now() - t0) / 1000)) };
}

async function main() {
  routeTemporalLogs();
  const pg = await startPostgres();
  const dir = await mkdtemp(join(tmpdir(), 'stratus-bench-scale-'));
  const temporal = await startTemporalDevServer({ dataDir: dir, port: 0, say });
  const results: Record<number, Awaited<ReturnType<typeof bootMany>> & Awaited<ReturnType<typeof placementAlone>> & { workerPeakRssMb: number }> = {};
  let filled: { instances: number; claimsPerSec: number; placementP50Ms: number; placementP99Ms: number } | undefined;
  try {
    for (const hosts of SIZES) {
      const cloud = await cloudOf(hosts, pg.url, temporal.address, dir);
      try {
        const r = await bootMany(cloud.rt, BOOTS);
        const alone = await placementAlone(cloud.rt, PLACEMENTS);
        results[hosts] = { ...r, ...alone, workerPeakRssMb: peakRssMb(cloud.worker.proc.pid!) };
        say(`${hosts} hosts: ${BOOTS} boots at concurrency ${CONCURRENCY}: ${JSON.stringify(results[hosts])}`);
        if (hosts === SIZES.at(-1) && FILL > BOOTS) {
          const { claimsPerSec } = await fillWithClaims(cloud.rt, FILL - BOOTS);
          filled = { instances: FILL, claimsPerSec, ...(await placementAlone(cloud.rt, PLACEMENTS)) };
          say(`${hosts} hosts filled to ${FILL} instances (${FILL - BOOTS} more claims at ${claimsPerSec}/s): ${JSON.stringify(filled)}`);
        }
      } finally {
        await cloud.stop();
      }
    }
    const [small, large] = [results[SIZES[0]!]!, results[SIZES.at(-1)!]!];
    const figures = {
      hosts: SIZES,
      boots: BOOTS,
      placementP50MsSmall: small.placementP50Ms,
      placementP50MsLarge: large.placementP50Ms,
      placementP99MsSmall: small.placementP99Ms,
      placementP99MsLarge: large.placementP99Ms,
      placementFlatRatio: round(small.placementP50Ms / large.placementP50Ms, 2),
      ...(filled
        ? {
            filledInstances: filled.instances,
            placementP50MsFilled: filled.placementP50Ms,
            placementP99MsFilled: filled.placementP99Ms,
            placementFlatRatioFilled: round(small.placementP50Ms / filled.placementP50Ms, 2),
          }
        : {}),
      scheduleStepP50MsSmall: small.scheduleStepP50Ms,
      scheduleStepP50MsLarge: large.scheduleStepP50Ms,
      scheduleStepFlatRatio: round(Math.max(1, small.scheduleStepP50Ms) / Math.max(1, large.scheduleStepP50Ms), 2),
      plugPortStepP50MsSmall: small.plugPortStepP50Ms,
      plugPortStepP50MsLarge: large.plugPortStepP50Ms,
      plugPortStepP99MsLarge: large.plugPortStepP99Ms,
      membershipRoundsSmall: small.membershipRounds,
      membershipRoundsLarge: large.membershipRounds,
      membershipSettleMsLarge: large.membershipSettleMs,
      bootsPerSecSmall: small.bootsPerSec,
      bootsPerSec: large.bootsPerSec,
      workerPeakRssMb: large.workerPeakRssMb,
      controllerPeakRssMb: peakRssMb('self'),
      errors: small.errors + large.errors,
    };
    say(`placementFlatRatio ${figures.placementFlatRatio} (target >= 0.8)${filled ? `; with ${filled.instances} instances on ${SIZES.at(-1)} hosts: ${figures.placementFlatRatioFilled}` : ''}`);
    if (json) console.log(JSON.stringify(figures));
    else console.table(figures);
  } finally {
    await temporal.stop().catch(() => {});
    await pg.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
