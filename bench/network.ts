/**
 * IPAM throughput: concurrent allocateIp operations (the command, its workflow, the IPAM append on
 * one network's stream) against real PostgreSQL and a Temporal dev server, compared with bare
 * workflows of as many no-op activities measured in the same run:
 * ipamRatio = allocationsPerSec / bareWorkflowsPerSec (target >= 0.7). Every allocation lands on one
 * external /16 from four projects, so they all contend for the same stream, the worst case.
 * No agent is involved: allocateIp records the address, it plugs nothing.
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
import { bareWorkflow } from '../workflows/bench.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';

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
    const bare = () => rt.temporal.workflow.execute(bareWorkflow, { taskQueue, workflowId: `bench-bare-${randomUUID()}`, args: [ALLOCATE_ACTIVITIES] });

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
    say('pingRttMs: not measured; the guest data plane is not built yet (see README, Networks)');

    if (json) console.log(JSON.stringify({ allocations: ALLOCATIONS, concurrency: CONCURRENCY, allocationsPerSec, bareWorkflowsPerSec, ipamRatio, pingRttMs: null }));
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

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
