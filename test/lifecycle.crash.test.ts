import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Caller } from '../domain/identity.js';
import { hostStream, instanceStream, operationStream } from '../domain/events.js';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime, RuntimeConfig } from '../server/runtime.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, instanceOf, lifecycleRuntime, settled, simHost, workerProcess } from './support/lifecycleStack.js';

describe('a worker killed in the middle of boots, on real Temporal, PostgreSQL and sim agents', () => {
  let rt: Runtime;
  let config: RuntimeConfig;
  let caller: Caller;
  let privateKey: string;
  const hosts: { agent: AgentProcess; id: string }[] = [];
  const workers: ReturnType<typeof workerProcess>[] = [];

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'lifecycle_crash_e');
    rt = stack.rt;
    config = stack.config;
    privateKey = stack.key.privateKey;
    caller = adminCaller();
    for (const name of ['crash-1', 'crash-2']) {
      // Slow enough that the kill lands while VMs are being created and started.
      const { agent, host } = await simHost(rt, caller, stack.key.publicKey, name, { latencyMs: 1500, latencyMethods: 'createVm,startVm' });
      hosts.push({ agent, id: host.id });
    }
  });
  afterAll(async () => {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await Promise.all(hosts.map((h) => h.agent.stop()));
    await rt?.close();
  });

  it('after SIGKILL and a new worker, every boot completes once: one VM per instance, no event duplicated', async () => {
    const first = workerProcess(config);
    workers.push(first);
    const { flavor } = await commands.createFlavor(rt, caller, { name: 'c1.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 });
    const { image } = await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 });
    const boots = await Promise.all(
      Array.from({ length: 20 }, (_, i) => commands.bootInstance(rt, caller, { name: `survivor-${i}`, flavorId: flavor.id, imageId: image.id })),
    );

    // Kill once some VM exists and some boots are still on their way: mid-createVm or mid-startVm.
    const deadline = Date.now() + 90_000;
    for (;;) {
      const ops = await Promise.all(boots.map((b) => rt.store.readStream(operationStream(b.operation.id))));
      const created = ops.filter((events) => events.some((e) => e.type === 'OperationStepFinished' && e.data.name === 'createVm')).length;
      const done = ops.filter((events) => events.some((e) => e.type === 'OperationSucceeded')).length;
      if (created > 0 && done < boots.length) break;
      if (Date.now() > deadline) throw new Error(`no boot reached createVm in time; worker said:\n${first.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    first.proc.kill('SIGKILL');
    await first.exited;
    workers.push(workerProcess(config));

    const operations = await Promise.all(boots.map((b) => settled(rt, b.operation.id)));
    expect(operations.map((o) => o.status)).toEqual(boots.map(() => 'SUCCEEDED'));

    const instances = await Promise.all(boots.map((b) => instanceOf(rt, b.instance!.id)));
    expect(instances.every((i) => i.state === 'RUNNING' && i.task === null)).toBe(true);
    for (const h of hosts) {
      const client = h.agent.client({ privateKey });
      try {
        const { vms } = await client.call('listVms', {});
        const here = instances.filter((i) => i.hostId === h.id).map((i) => i.id).sort();
        expect(vms.map((v) => v.labels.instanceId).sort()).toEqual(here);
        expect(vms.every((v) => v.state === 'running')).toBe(true);
      } finally {
        client.close();
      }
    }

    for (const b of boots) {
      // One run: the kill moved its tasks to the new worker, it did not start the workflow again.
      const description = await rt.temporal.workflow.getHandle(workflowIdOf(b.operation.id)).describe();
      expect(description.runId).toBe(operations.find((o) => o.id === b.operation.id)!.runId);
      const opEvents = await rt.store.readStream(operationStream(b.operation.id));
      const signature = opEvents.map((e) => `${e.type}:${'name' in e.data ? String(e.data.name) : ''}`);
      expect(new Set(signature).size, signature.join(', ')).toBe(signature.length);
      const instanceEvents = (await rt.store.readStream(instanceStream(b.instance!.id))).map((e) => e.type);
      expect(instanceEvents).toEqual(['InstanceBootRequested', 'InstanceScheduled', 'InstanceLaunched', 'InstanceTaskFinished']);
    }
    for (const h of hosts) {
      const claims = (await rt.store.readStream(hostStream(h.id))).filter((e) => e.type === 'HostCapacityClaimed');
      const ids = claims.map((e) => (e.type === 'HostCapacityClaimed' ? e.data.instanceId : ''));
      expect(new Set(ids).size).toBe(ids.length);
    }
  });
});
