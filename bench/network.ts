/**
 * IPAM throughput: concurrent allocateIp operations (the command, its workflow, the IPAM append on
 * one network's stream) against real PostgreSQL and a Temporal dev server, compared with bare
 * workflows of as many no-op activities measured in the same run:
 * ipamRatio = allocationsPerSec / bareWorkflowsPerSec (target >= 0.7). Every allocation lands on one
 * external /16 from four projects, so they all contend for the same stream, the worst case.
 * No agent is involved: allocateIp records the address, it plugs nothing.
 *
 * pingRttMs: two test guests (TCG) on two qemu drivers, each with its own network namespace, joined by
 * an underlay namespace over VXLAN (test/support/underlay.ts); the median round trip guest A measures
 * to guest B, against its round trip to its own host's gateway in the same run (crossHostRatio).
 * Needs root, QEMU and the test guest's packages; without them it is reported as null.
 *
 *   npm run bench:network            figures
 *   npm run bench:network -- --json  exactly one JSON line on stdout
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Caller } from '../domain/identity.js';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { createRuntime } from '../server/runtime.js';
import { startTemporalDevServer } from '../server/temporalDevServer.js';
import { routeTemporalLogs } from '../server/temporalLogs.js';
import { startWorker } from '../server/worker.js';
import { runBareWorkflow } from './baseline.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';
import { macOf } from '../activities/ports.js';
import { QemuDriver } from '../hostagent/drivers/qemu/qemuDriver.js';
import type { CompiledRule } from '../hostagent/network.js';
import { buildTestGuest, consoleText, killQemusUnder, pingResults, waitFor } from '../test/support/guest.js';
import { createUnderlay } from '../test/support/underlay.js';

const json = process.argv.includes('--json');
const ALLOCATIONS = Number(process.env.BENCH_ALLOCATIONS ?? 200);
const CONCURRENCY = 32;
/** allocateIp without an instance runs one activity: allocateAddress (workflows/allocateIp.ts). */
const ALLOCATE_ACTIVITIES = 1;
const say = (m: string) => (json ? process.stderr.write(m + '\n') : console.log(m));
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Runs `total` jobs `concurrency` at a time and returns how many finished per second. */
async function perSecond(total: number, concurrency: number, job: () => Promise<unknown>): Promise<number> {
  let left = total;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await job();
    }),
  );
  return round(total / ((performance.now() - t0) / 1000));
}

async function main() {
  routeTemporalLogs();
  const pg = await startPostgres();
  const dir = await mkdtemp(join(tmpdir(), 'stratus-bench-network-'));
  const temporal = await startTemporalDevServer({ dataDir: dir, port: 0, say });
  const taskQueue = `bench-network-${randomUUID()}`;
  const rt = await createRuntime({
    databaseUrl: await createDatabase(pg.url, `bench_network_${Date.now()}`),
    temporalAddress: temporal.address,
    temporalNamespace: 'default',
    taskQueue,
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    sshKeyPath: join(dir, 'controller_ed25519'),
  });
  const worker = await startWorker(rt, { taskQueue });
  try {
    const { network } = await commands.createNetwork(rt, bootstrapAdminCaller, { name: 'bench-public', cidr: '100.64.0.0/16', external: true });
    const projects: Caller[] = Array.from({ length: 4 }, () => ({ tokenId: `bench-${randomUUID()}`, projectId: randomUUID(), role: 'MEMBER' }));
    let n = 0;
    const allocate = async () => {
      const { operation } = await commands.allocateIp(rt, projects[n++ % 4]!, { networkId: network.id, kind: 'FLOATING' });
      await rt.temporal.workflow.getHandle(workflowIdOf(operation.id)).result();
    };
    const bare = () => runBareWorkflow(rt, taskQueue, `bench-bare-${randomUUID()}`, ALLOCATE_ACTIVITIES);

    await perSecond(20, 4, allocate); // warm-up: worker caches, JIT
    await perSecond(20, 4, bare);
    const allocationsPerSec = await perSecond(ALLOCATIONS, CONCURRENCY, allocate);
    say(`allocateIp at concurrency ${CONCURRENCY} on one /16: ${ALLOCATIONS} allocations, ${allocationsPerSec}/s`);
    const bareWorkflowsPerSec = await perSecond(ALLOCATIONS, CONCURRENCY, bare);
    say(`bare workflows (${ALLOCATE_ACTIVITIES} no-op activity) at concurrency ${CONCURRENCY}: ${bareWorkflowsPerSec}/s`);
    const ipamRatio = round(allocationsPerSec / bareWorkflowsPerSec, 2);
    say(`ipamRatio ${ipamRatio} (target >= 0.7)`);

    const events = await rt.store.readStream(`network-${network.id}`);
    const addresses = events.filter((e) => e.type === 'AddressAllocated').map((e) => (e.data as { address: string }).address);
    if (new Set(addresses).size !== addresses.length) throw new Error('an address was handed out twice');
    const rtt = await measurePingRtt().catch((e: unknown) => {
      say(`pingRttMs: not measured (${e instanceof Error ? e.message : String(e)})`);
      return { pingRttMs: null, gatewayRttMs: null, crossHostRatio: null };
    });
    if (rtt.pingRttMs !== null) {
      say(`pingRttMs ${rtt.pingRttMs} guest to guest across two hosts (TCG, median of ${PINGS}); to its own gateway ${rtt.gatewayRttMs}; crossHostRatio ${rtt.crossHostRatio}`);
    }

    if (json) console.log(JSON.stringify({ allocations: ALLOCATIONS, concurrency: CONCURRENCY, allocationsPerSec, bareWorkflowsPerSec, ipamRatio, ...rtt }));
  } finally {
    for (const [name, stop] of [
      ['worker', () => worker.stop()],
      ['runtime', () => rt.close()],
      ['temporal', () => temporal.stop()],
      ['postgres', () => pg.stop()],
      ['data dir', () => rm(dir, { recursive: true, force: true })],
    ] as Array<[string, () => Promise<unknown>]>) {
      await stop().catch((e: unknown) => say(`stopping ${name} failed: ${String(e)}`));
    }
  }
}

const PINGS = Number(process.env.BENCH_PINGS ?? 15);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Guest A's round trips to guest B (the other host) and to its gateway (its own host), from its console. */
async function measurePingRtt(): Promise<{ pingRttMs: number; gatewayRttMs: number; crossHostRatio: number }> {
  const guest = buildTestGuest();
  const underlay = createUnderlay(2);
  const dirs = await Promise.all([0, 1].map((i) => mkdtemp(join(tmpdir(), `stratus-bench-rtt-${i}-`))));
  try {
    const network = { networkId: randomUUID(), vni: 4242, cidr: '10.99.0.0/29', gateway: '10.99.0.1' };
    const open: CompiledRule[] = (['INGRESS', 'EGRESS'] as const).map((direction) => ({ direction, protocol: 'ANY', portMin: null, portMax: null, remoteCidr: '0.0.0.0/0', remoteGroupId: null }));
    const ctx = { signal: new AbortController().signal, progress: () => {} };
    const drivers: QemuDriver[] = [];
    for (const [i, dir] of dirs.entries()) {
      const { netNamespace, underlayDevice, underlayAddress } = underlay.agentOptions(i);
      const d = new QemuDriver(dir, {
        accel: 'tcg', capacity: '2,2048,10', bootKernel: guest.kernelPath, bootInitrd: guest.initrdPath, bootCmdline: guest.cmdline, netNamespace, underlayDevice, underlayAddress,
      });
      await d.init();
      const portId = randomUUID();
      const name = `rtt-${i}`;
      await d.network!.plugPort({ ...network, portId, vmName: name, mac: macOf(portId), address: `10.99.0.${i + 2}`, rules: open, floatingAddresses: [] }, ctx);
      await d.createVm({ name, vcpus: 1, memoryMb: 256, diskGb: 0, labels: {}, volumes: [] }, ctx);
      await d.startVm(name, ctx);
      drivers.push(d);
    }
    const rtts = await waitFor(`${PINGS} answered pings from guest A to B and to its gateway`, 300_000, async () => {
      const results = pingResults(await consoleText(drivers[0]!, 'rtt-0')).filter((p) => p.ok && p.rttMs !== undefined);
      const peer = results.filter((p) => p.target === '10.99.0.3').map((p) => p.rttMs!);
      const gateway = results.filter((p) => p.target === network.gateway).map((p) => p.rttMs!);
      return peer.length >= PINGS && gateway.length >= PINGS ? { peer: peer.slice(-PINGS), gateway: gateway.slice(-PINGS) } : undefined;
    });
    for (const d of drivers) await d.close();
    const pingRttMs = round(median(rtts.peer), 2);
    const gatewayRttMs = round(median(rtts.gateway), 2);
    return { pingRttMs, gatewayRttMs, crossHostRatio: round(pingRttMs / gatewayRttMs, 2) };
  } finally {
    killQemusUnder(...dirs);
    underlay.destroy(dirs);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
