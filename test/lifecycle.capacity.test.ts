import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Caller } from '../domain/identity.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, hostOf, instanceOf, lifecycleRuntime, settled, simHost } from './support/lifecycleStack.js';

describe('placement under concurrency, on real Temporal, PostgreSQL and three small sim hosts', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let caller: Caller;
  let privateKey: string;
  const hosts: { agent: AgentProcess; id: string }[] = [];

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'lifecycle_capacity_e');
    rt = stack.rt;
    privateKey = stack.key.privateKey;
    worker = await startWorker(rt);
    caller = adminCaller();
    for (const name of ['small-1', 'small-2', 'small-3']) {
      const { agent, host } = await simHost(rt, caller, stack.key.publicKey, name, { vcpus: 4, memoryMb: 4096, diskGb: 100 });
      hosts.push({ agent, id: host.id });
    }
  });
  afterAll(async () => {
    await worker?.shutdown();
    await Promise.all(hosts.map((h) => h.agent.stop()));
    await rt?.close();
  });

  it('50 concurrent boots never overcommit a host: allocated equals the RUNNING instances there, the rest end NO_VALID_HOST', async () => {
    const { flavor } = await commands.createFlavor(rt, caller, { name: 'c1.small', vcpus: 1, memoryMb: 512, diskGb: 1 });
    const { image } = await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 });
    const boots = await Promise.all(
      Array.from({ length: 50 }, (_, i) => commands.bootInstance(rt, caller, { name: `crowd-${i}`, flavorId: flavor.id, imageId: image.id })),
    );
    const operations = await Promise.all(boots.map((b) => settled(rt, b.operation.id)));
    const instances = await Promise.all(boots.map((b) => instanceOf(rt, b.instance!.id)));

    const running = instances.filter((i) => i.state === 'RUNNING');
    // Each host holds 4 vCPU: exactly 12 fit; none may fail for any other reason than room.
    expect(running).toHaveLength(12);
    for (const [i, op] of operations.entries()) {
      if (instances[i]!.state === 'RUNNING') expect(op.status).toBe('SUCCEEDED');
      else {
        expect(op).toMatchObject({ status: 'FAILED', error: { code: 'NO_VALID_HOST' } });
        expect(instances[i]).toMatchObject({ state: 'ERROR', task: null });
        expect(instances[i]!.errorReason).toMatch(/^NO_VALID_HOST/);
      }
    }

    for (const h of hosts) {
      const host = await hostOf(rt, h.id);
      const here = running.filter((i) => i.hostId === h.id);
      expect(host.allocated.vcpus).toBeLessThanOrEqual(host.capacity.vcpus);
      expect(host.allocated.memoryMb).toBeLessThanOrEqual(host.capacity.memoryMb);
      expect(host.allocated).toEqual({
        vcpus: here.reduce((s, i) => s + i.flavor.vcpus, 0),
        memoryMb: here.reduce((s, i) => s + i.flavor.memoryMb, 0),
        diskGb: here.reduce((s, i) => s + i.flavor.diskGb, 0),
      });
      expect(Object.keys(host.claims).sort()).toEqual(here.map((i) => i.id).sort());
      const client = h.agent.client({ privateKey });
      try {
        const { vms } = await client.call('listVms', {});
        expect(vms.map((v) => v.labels.instanceId).sort()).toEqual(here.map((i) => i.id).sort());
      } finally {
        client.close();
      }
    }
  });
});
