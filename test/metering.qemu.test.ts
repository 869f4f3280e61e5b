import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostAgentClient } from '../hostagent/client.js';
import type { VmSample } from '../hostagent/driver.js';
import { samplesOf } from '../domain/meters.js';
import { buildTestGuest, killQemusUnder, lastHeartbeat, consoleText, waitBoots, waitHeartbeat, type TestGuest } from './support/guest.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';

/** The qemu driver's sampleVms through a real agent over SSH, on two real QEMU guests under TCG. */
describe('QEMU meters: CPU time of the QEMU process, memory and block stats', () => {
  let guest: TestGuest;
  let agent: AgentProcess;
  let client: HostAgentClient;
  const call = <T>(method: string, params: unknown) =>
    client.call(method as never, params as never, { idempotencyKey: randomUUID(), timeoutMs: 120_000 }) as Promise<T>;
  const consoleOf = { consoleLog: (name: string, o: { lines: number }) => call<{ text: string }>('consoleLog', { name, lines: o.lines }) };

  beforeAll(async () => {
    guest = buildTestGuest();
    agent = await startAgentProcess({ driver: 'qemu', driverOptions: { accel: 'tcg', stopTimeoutMs: 20_000, capacity: '8,8192,100' } });
    client = agent.client();
  });
  afterAll(async () => {
    client?.close();
    await agent?.stop();
    if (agent) {
      killQemusUnder(agent.stateDir);
      rmSync(agent.stateDir, { recursive: true, force: true });
    }
  });

  it('a guest burning its vCPU shows cpu_util well above an idle one', async () => {
    const vm = (name: string, cmdline: string) => ({
      name, vcpus: 1, memoryMb: 256, diskGb: 1,
      labels: { instanceId: randomUUID(), projectId: randomUUID() },
      boot: { kind: 'kernel', kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline },
    });
    for (const [name, cmdline] of [['busy', `${guest.cmdline} stratus.burn`], ['idle', guest.cmdline]] as const) {
      await call('createVm', { spec: vm(name, cmdline) });
      await call('startVm', { name });
    }
    await waitBoots(consoleOf, 'busy', 1);
    await waitBoots(consoleOf, 'idle', 1);

    const read = async () => new Map((await call<{ samples: VmSample[] }>('sampleVms', {})).samples.map((s) => [s.name, s]));
    const first = await read();
    // The interval is the idle guest's own clock: three heartbeats, whatever the host's load.
    await waitHeartbeat(consoleOf, 'idle', lastHeartbeat(await consoleText(consoleOf, 'idle')) + 3);
    const second = await read();

    const util = (name: string) => {
      const [a, b] = [first.get(name)!, second.get(name)!];
      return samplesOf(b.labels.instanceId!, b, a).find((s) => s.meter === 'cpu_util')!.value;
    };
    const busy = util('busy');
    const idle = util('idle');
    // Two cores shared by many (load average above 20 at times): the busy guest gets whatever share the
    // scheduler gives it (15% measured then, 90% on a quiet machine), the idle one a few % for TCG's timers.
    expect(busy - idle, `busy ${busy}%, idle ${idle}%`).toBeGreaterThan(5);
    expect(busy, `busy ${busy}%, idle ${idle}%`).toBeGreaterThan(2 * idle);
    // The idle guest's heartbeats start after it read its disk's marker sector and wrote one (a blank
    // disk): query-blockstats counts both, and counters only grow.
    const idleDisk = second.get('idle')!;
    expect(idleDisk.diskReadBytes).toBeGreaterThanOrEqual(512);
    expect(idleDisk.diskWriteBytes).toBeGreaterThanOrEqual(512);
    for (const s of second.values()) {
      expect(s.cpuNs).toBeGreaterThan(first.get(s.name)!.cpuNs - 1);
      expect(s.diskReadBytes).toBeGreaterThanOrEqual(first.get(s.name)!.diskReadBytes);
      expect(s.diskWriteBytes).toBeGreaterThanOrEqual(first.get(s.name)!.diskWriteBytes);
      expect(s.memoryMb).toBeGreaterThan(10);
      expect(s.labels.instanceId).toBeDefined();
      // No port is plugged (this driver has no data plane yet): no network counters, and no error for it.
      expect(s.network).toBeUndefined();
    }
    // A stopped VM has no process to read: it drops out of the samples.
    await call('stopVm', { name: 'busy', force: true });
    expect([...(await read()).keys()]).toEqual(['idle']);
  }, 300_000);
});
