/**
 * QEMU through the host agent against QEMU by hand. Boot: createVm + startVm over SSH until the test
 * guest's boot marker is on its serial log, against the identical QEMU command line (buildQemuArgv, the
 * same function the driver uses) launched by hand; both make the same qcow2 disk first and both watch
 * the console file the same way. Migration: a running VM sent between two agents; QEMU's own downtime
 * and total time. Medians over RUNS, alternating agent and direct so drift hits both alike.
 *
 *   npm run bench:qemu            human-readable
 *   npm run bench:qemu -- --json  exactly one JSON line
 *   --accel kvm|tcg|auto (default tcg: nested KVM hangs on the reference machines)
 */
import { randomUUID } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { HostAgentClient } from '../hostagent/client.js';
import { VmSpec } from '../hostagent/driver.js';
import { buildQemuArgv, vmPaths } from '../hostagent/drivers/qemu/index.js';
import type { MethodName, ParamsOf, ResultOf } from '../hostagent/protocol.js';
import { BOOT_MARKER, buildTestGuest, killQemusUnder } from '../test/support/guest.js';
import { startAgentProcess, type AgentProcess } from '../test/support/hostagent.js';

/** Boot times under TCG swing by ±1 s with the load of a shared 2-core machine: medians of several runs. */
const RUNS = 5;
const MIGRATIONS = 3;
const json = process.argv.includes('--json');
const accelArg = process.argv[process.argv.indexOf('--accel') + 1];
const accel = process.argv.includes('--accel') && accelArg ? accelArg : 'tcg';
/** The part each side spends before QEMU runs (disk + launch, plus SSH and the agent), apart from the boot. */
const agentCalls: number[] = [];
const directLaunch: number[] = [];
const say = (s: string) => void (json || console.log(s));
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;

const guest = buildTestGuest();
const spec = (name: string) =>
  VmSpec.parse({
    name, vcpus: 1, memoryMb: 256, diskGb: 1,
    boot: { kind: 'kernel', kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline: guest.cmdline },
  });

async function waitMarker(consolePath: string, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(existsSync(consolePath) && readFileSync(consolePath, 'utf8').includes(BOOT_MARKER))) {
    if (Date.now() > until) throw new Error(`no boot marker in ${consolePath} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const call = <M extends MethodName>(c: HostAgentClient, method: M, params: ParamsOf<M>): Promise<ResultOf<M>> =>
  c.call(method, params, { idempotencyKey: randomUUID(), timeoutMs: 180_000 });

async function agentBoot(agent: AgentProcess, c: HostAgentClient, name: string): Promise<number> {
  const t0 = performance.now();
  await call(c, 'createVm', { spec: spec(name) });
  const t1 = performance.now();
  await call(c, 'startVm', { name });
  const t2 = performance.now();
  await waitMarker(vmPaths(agent.stateDir, name).console);
  const ms = performance.now() - t0;
  agentCalls.push(t2 - t0);
  say(`  agent: createVm ${(t1 - t0).toFixed(0)} ms, startVm ${(t2 - t1).toFixed(0)} ms, to marker ${(ms - (t2 - t0)).toFixed(0)} ms`);
  await call(c, 'destroyVm', { name });
  return ms;
}

async function directBoot(root: string, name: string, usedAccel: 'kvm' | 'tcg'): Promise<number> {
  const paths = vmPaths(root, name);
  const argv = buildQemuArgv({ spec: spec(name), paths, accel: usedAccel, machine: 'q35', hasDisk: true, volumes: [], hotplugSlots: 4, daemonize: true });
  const t0 = performance.now();
  mkdirSync(paths.dir, { recursive: true });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', paths.disk, '1G']);
  const t1 = performance.now();
  const r = spawnSync('qemu-system-x86_64', argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`QEMU by hand failed: ${r.stderr}`);
  const t2 = performance.now();
  await waitMarker(paths.console);
  const ms = performance.now() - t0;
  directLaunch.push(t2 - t0);
  say(`  by hand: qemu-img ${(t1 - t0).toFixed(0)} ms, launch ${(t2 - t1).toFixed(0)} ms, to marker ${(ms - (t2 - t0)).toFixed(0)} ms`);
  const pid = Number(readFileSync(paths.pid, 'utf8'));
  process.kill(pid, 'SIGKILL');
  rmSync(paths.dir, { recursive: true, force: true });
  return ms;
}

async function main() {
  const driverOptions = { accel, capacity: '8,8192,100' };
  const a = await startAgentProcess({ driver: 'qemu', driverOptions });
  const b = await startAgentProcess({ driver: 'qemu', driverOptions });
  const ca = a.client();
  const cb = b.client();
  const directRoot = mkdtempSync(join(tmpdir(), 'stratus-bench-qemu-'));
  try {
    const usedAccel = (await call(ca, 'hostInfo', {})).accel as 'kvm' | 'tcg';
    say(`accelerator: ${usedAccel}`);
    const agentMs: number[] = [];
    const directMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      agentMs.push(await agentBoot(a, ca, `boot-agent-${i}`));
      directMs.push(await directBoot(directRoot, `boot-direct-${i}`, usedAccel));
      say(`run ${i + 1}: agent ${agentMs.at(-1)!.toFixed(0)} ms, by hand ${directMs.at(-1)!.toFixed(0)} ms`);
    }

    // Migration: one VM sent back and forth between the two agents.
    await call(ca, 'createVm', { spec: spec('mig') });
    await call(ca, 'startVm', { name: 'mig' });
    await waitMarker(vmPaths(a.stateDir, 'mig').console);
    const downtimes: number[] = [];
    const totals: number[] = [];
    let [from, to] = [ca, cb];
    for (let i = 0; i < MIGRATIONS; i++) {
      const target = await call(to, 'migrateReceive', { spec: spec('mig') });
      const r = await call(from, 'migrateSend', { name: 'mig', target });
      downtimes.push(r.downtimeMs);
      totals.push(r.totalMs);
      say(`migration ${i + 1}: downtime ${r.downtimeMs} ms, total ${r.totalMs} ms, ${(r.transferredBytes / 2 ** 20).toFixed(1)} MiB`);
      [from, to] = [to, from];
    }
    await call(from, 'destroyVm', { name: 'mig' });

    const agentBootMs = Math.round(median(agentMs));
    const directBootMs = Math.round(median(directMs));
    const figures = {
      bench: 'qemu',
      accel: usedAccel,
      machine: 'q35',
      agentBootMs,
      directBootMs,
      bootRatio: Number((directBootMs / agentBootMs).toFixed(3)),
      agentCallsMs: Math.round(median(agentCalls)),
      directLaunchMs: Math.round(median(directLaunch)),
      migrationDowntimeMs: median(downtimes),
      migrationTotalMs: median(totals),
      bootRuns: RUNS,
      migrations: MIGRATIONS,
    };
    if (json) console.log(JSON.stringify(figures));
    else console.log(figures);
  } finally {
    ca.close();
    cb.close();
    await Promise.allSettled([a.stop(), b.stop()]);
    killQemusUnder(a.stateDir, b.stateDir, directRoot);
    for (const d of [a.stateDir, b.stateDir, directRoot]) rmSync(d, { recursive: true, force: true });
  }
}

await main();
