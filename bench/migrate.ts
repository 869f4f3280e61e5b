/**
 * Mobility through the whole controller against the same work done by hand.
 *
 * - liveMigrationMs: migrateInstance (what the mutation calls) until the read model shows the instance
 *   on the target with its task released, between two qemu host agents (TCG), the test guest running;
 * - directMigrationMs: the same QMP migration by hand (the target QEMU launched with `-incoming defer`
 *   from the driver's own command line, its disk exported over NBD and `migrate-incoming`, then the
 *   driver's `mirrorDisk` and `runMigration` on the source until QEMU reports completed), alternating with
 *   the API runs so drift hits both alike;
 *   migrationRatio = directMigrationMs / liveMigrationMs (target >= 0.8);
 * - downtimeMs: QEMU's own stop-and-copy downtime of the API migrations (the guest is paused that long);
 * - drainSecondsPer10: setHostState(MAINTENANCE) on a sim host with 10 instances until the DRAIN_HOST
 *   operation succeeded.
 *
 *   npm run bench:migrate            human-readable
 *   npm run bench:migrate -- --json  exactly one JSON line on stdout
 *   BENCH_MIGRATE_STEPS=1 npm run bench:migrate   also each API migration's steps with their start and end times
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { flavorIdFor } from '../domain/catalog.js';
import { VmSpec } from '../hostagent/driver.js';
import { buildQemuArgv, vmPaths } from '../hostagent/drivers/qemu/index.js';
import { exportDisk, mirrorDisk, runMigration, stopMirror, waitIncomingDone } from '../hostagent/drivers/qemu/migration.js';
import { launchQemu } from '../hostagent/drivers/qemu/vmProcess.js';
import { startProjections } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { loadOrCreateControllerKey } from '../server/controllerKey.js';
import { createRuntime, type Runtime } from '../server/runtime.js';
import { freePort, startTemporalDevServer } from '../server/temporalDevServer.js';
import { routeTemporalLogs } from '../server/temporalLogs.js';
import { startWorker } from '../server/worker.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import { BOOT_MARKER, buildTestGuest, killQemusUnder } from '../test/support/guest.js';
import { startAgentProcess, type AgentProcess } from '../test/support/hostagent.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';
import { workflowIdOf } from '../domain/operation.js';

const json = process.argv.includes('--json');
const RUNS = Number(process.env.BENCH_MIGRATIONS ?? 5);
const DRAINED = 10;
const say = (m: string) => (json ? process.stderr.write(m + '\n') : console.log(m));
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const guest = buildTestGuest();
const MEMORY_MB = 256;
const kernelBoot = { kind: 'kernel' as const, kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline: guest.cmdline };

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The read model shows the instance on `hostId` with no task: what a client polling the API would see. */
const settledOn = (rt: Runtime, instanceId: string, hostId: string) =>
  until(`instance ${instanceId} on ${hostId}`, async () => {
    const [row] = await rt.db.query<{ host_id: string; task: string | null; state: string }>(
      'SELECT host_id::text AS host_id, task, state FROM rm_instances WHERE id = $1',
      [instanceId],
    );
    return row && row.host_id === hostId && row.task === null && row.state === 'RUNNING' ? true : undefined;
  });

/** The same migration by hand: a source QEMU booted from the driver's command line, a target waiting, QMP between. */
async function directMigration(root: string, i: number): Promise<number> {
  const spec = VmSpec.parse({ name: `direct-${i}`, vcpus: 1, memoryMb: MEMORY_MB, diskGb: 1, boot: kernelBoot });
  const launch = (dir: string, incoming?: string) => {
    const paths = vmPaths(join(root, dir), spec.name);
    mkdirSync(paths.dir, { recursive: true });
    return { paths, argv: buildQemuArgv({ spec, paths, accel: 'tcg', machine: 'q35', hasDisk: true, volumes: [], hotplugSlots: 4, daemonize: true, ...(incoming ? { incoming } : {}) }) };
  };
  const src = launch('src');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', src.paths.disk, '1G']);
  const source = await launchQemu(src.paths, src.argv);
  await until('the direct source to boot', async () => (readFileSync(src.paths.console, 'utf8').includes(BOOT_MARKER) ? true : undefined));
  const t0 = performance.now();
  const dst = launch('dst', 'defer');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', dst.paths.disk, '1G']);
  const target = await launchQemu(dst.paths, dst.argv);
  // As the agent does it: the target exports its disk, the source mirrors into it, then memory moves.
  const diskPort = await freePort();
  await exportDisk(target.qmp, '127.0.0.1', diskPort);
  const port = await freePort();
  await target.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
  await mirrorDisk(source.qmp, { host: '127.0.0.1', port: diskPort }, { timeoutMs: 10 * 60_000 });
  await runMigration(source.qmp, `tcp:127.0.0.1:${port}`, { block: false, what: 'direct migration' });
  await stopMirror(source.qmp, false);
  await waitIncomingDone(target.qmp, 60_000);
  const ms = performance.now() - t0;
  for (const q of [source, target]) {
    await q.qmp.execute('quit').catch(() => undefined);
    q.qmp.close();
  }
  rmSync(join(root, 'src'), { recursive: true, force: true });
  rmSync(join(root, 'dst'), { recursive: true, force: true });
  return ms;
}

async function main() {
  routeTemporalLogs();
  const pg = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'stratus-bench-migrate-'));
  const temporal = await startTemporalDevServer({ dataDir: dir, port: 0, say });
  const key = loadOrCreateControllerKey(join(dir, 'controller_ed25519'));
  const taskQueue = `bench-migrate-${randomUUID()}`;
  const rt = await createRuntime({
    databaseUrl: await createDatabase(pg.url, `bench_migrate_${Date.now()}`),
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
  const agents: AgentProcess[] = [];
  const directRoot = mkdtempSync(join(tmpdir(), 'stratus-bench-migrate-direct-'));
  try {
    const caller = bootstrapAdminCaller;
    const register = async (name: string, driver: 'qemu' | 'sim', driverOptions: Record<string, string | number>) => {
      const agent = await startAgentProcess({ driver, driverOptions, authorizedKeys: [key.publicKey] });
      agents.push(agent);
      return (await commands.registerHost(rt, caller, { name, address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint })).host.id;
    };
    const qemuOptions = { accel: 'tcg', capacity: '4,4096,50', bootKernel: guest.kernelPath, bootInitrd: guest.initrdPath, bootCmdline: guest.cmdline };
    const hostA = await register('bench-qemu-a', 'qemu', qemuOptions);
    const hostB = await register('bench-qemu-b', 'qemu', qemuOptions);
    await commands.createFlavor(rt, caller, { name: 'bench.mig', vcpus: 1, memoryMb: MEMORY_MB, diskGb: 1 });
    await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 });
    const imageId = (await commands.registerImage(rt, caller, { name: 'kernel', format: 'raw', sizeBytes: 1 })).image.id;

    const boot = await commands.bootInstance(rt, caller, { name: 'roamer', flavorId: flavorIdFor('bench.mig'), imageId });
    await rt.temporal.workflow.getHandle(workflowIdOf(boot.operation.id)).result();
    const instanceId = boot.instance!.id;
    const firstHost = await until('the booted instance in the read model', async () => {
      const [row] = await rt.db.query<{ host_id: string | null }>('SELECT host_id::text AS host_id FROM rm_instances WHERE id = $1', [instanceId]);
      return row?.host_id ?? undefined;
    });
    const stateDirOf = (hostId: string) => agents[hostId === hostA ? 0 : 1]!.stateDir;
    const vmName = vmNameOf({ id: instanceId, name: 'roamer' });
    await until('the guest to boot', async () => (readFileSync(vmPaths(stateDirOf(firstHost), vmName).console, 'utf8').includes(BOOT_MARKER) ? true : undefined));

    const apiMs: number[] = [];
    const directMs: number[] = [];
    const downtimes: number[] = [];
    let at = firstHost;
    for (let i = 0; i < RUNS; i++) {
      const to = at === hostA ? hostB : hostA;
      const t0 = performance.now();
      const { operation } = await commands.migrateInstance(rt, caller, { id: instanceId, targetHostId: to });
      await settledOn(rt, instanceId, to);
      apiMs.push(performance.now() - t0);
      const [op] = await rt.db.query<{ doc: { steps: Array<{ name: string; progress?: { message: string } | null }> } }>('SELECT doc FROM rm_operations WHERE id = $1', [operation.id]);
      const downtime = /downtime (\d+) ms/.exec(op?.doc.steps.find((s) => s.name === 'migrateSend')?.progress?.message ?? '')?.[1];
      if (downtime) downtimes.push(Number(downtime));
      if (process.env.BENCH_MIGRATE_STEPS) {
        const d = op!.doc as unknown as { createdAt?: string; steps: Array<{ name: string; startedAt?: string; finishedAt?: string }> };
        say('  steps: ' + d.steps.map((s) => `${s.name} ${s.startedAt} ${s.finishedAt}`).join(' | ') + ` created ${d.createdAt}`);
      }
      at = to;
      directMs.push(await directMigration(directRoot, i));
      say(`run ${i + 1}: through the API ${apiMs.at(-1)!.toFixed(0)} ms (downtime ${downtime ?? '?'} ms), by hand ${directMs.at(-1)!.toFixed(0)} ms`);
    }

    // Drain: ten sim instances off one host onto two others.
    const simOptions = { vcpus: 64, memoryMb: 65536, diskGb: 1000 };
    const drained = await register('bench-sim-drain', 'sim', simOptions);
    await Promise.all(
      Array.from({ length: DRAINED }, async (_, i) => {
        const b = await commands.bootInstance(rt, caller, { name: `drain-${i}`, flavorId: flavorIdFor('m1.tiny'), imageId });
        await rt.temporal.workflow.getHandle(workflowIdOf(b.operation.id)).result();
      }),
    );
    await register('bench-sim-1', 'sim', simOptions);
    await register('bench-sim-2', 'sim', simOptions);
    const t0 = performance.now();
    const { operation } = await commands.setHostState(rt, caller, { id: drained, state: 'MAINTENANCE' });
    await rt.temporal.workflow.getHandle(workflowIdOf(operation!.id)).result();
    const drainSeconds = (performance.now() - t0) / 1000;
    say(`drain of ${DRAINED} sim instances: ${drainSeconds.toFixed(2)} s`);

    const liveMigrationMs = Math.round(median(apiMs));
    const directMigrationMs = Math.round(median(directMs));
    const figures = {
      bench: 'migrate',
      accel: 'tcg',
      guestMemoryMb: MEMORY_MB,
      liveMigrationMs,
      directMigrationMs,
      migrationRatio: Number((directMigrationMs / liveMigrationMs).toFixed(3)),
      downtimeMs: downtimes.length ? median(downtimes) : null,
      drainSecondsPer10: Number(((drainSeconds * 10) / DRAINED).toFixed(2)),
      migrations: RUNS,
    };
    if (json) console.log(JSON.stringify(figures));
    else console.log(figures);
  } finally {
    await projections.stop().catch(() => undefined);
    await worker.stop().catch(() => undefined);
    await rt.close().catch(() => undefined);
    await Promise.allSettled(agents.map((a) => a.stop()));
    killQemusUnder(directRoot, ...agents.map((a) => a.stateDir));
    for (const d of [directRoot, ...agents.map((a) => a.stateDir)]) rmSync(d, { recursive: true, force: true });
    await temporal.stop().catch(() => undefined);
    await pg.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
