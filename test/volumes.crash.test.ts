import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { operationStream, volumeStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { volumeDecider, type Volume } from '../domain/volume.js';
import { readFolded } from '../activities/events.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime, RuntimeConfig } from '../server/runtime.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, instanceOf, lifecycleRuntime, settled, simHost, workerProcess } from './support/lifecycleStack.js';

describe('a worker killed in the middle of attaches, on real Temporal, PostgreSQL and a sim agent', () => {
  let rt: Runtime;
  let config: RuntimeConfig;
  let caller: Caller;
  let privateKey: string;
  let agent: AgentProcess;
  const workers: ReturnType<typeof workerProcess>[] = [];

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'volumes_crash_e');
    rt = stack.rt;
    config = stack.config;
    privateKey = stack.key.privateKey;
    caller = adminCaller();
    // Slow attaches, so the kill lands while the agent is plugging volumes in.
    agent = (await simHost(rt, caller, stack.key.publicKey, 'crash-vol', { latencyMs: 1500, latencyMethods: 'attachVolume' })).agent;
  });
  afterAll(async () => {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await agent?.stop();
    await rt?.close();
  });

  it('after SIGKILL and a new worker, every attach completes once or is undone: no volume left ATTACHING, no VM holding one twice', async () => {
    const first = workerProcess(config);
    workers.push(first);
    const { flavor } = await commands.createFlavor(rt, caller, { name: 'c1.vol', vcpus: 1, memoryMb: 256, diskGb: 1 });
    const { image } = await commands.registerImage(rt, caller, { name: 'vol-crash', format: 'qcow2', sizeBytes: 1 });
    const boots = await Promise.all(Array.from({ length: 8 }, (_, i) => commands.bootInstance(rt, caller, { name: `holder-${i}`, flavorId: flavor.id, imageId: image.id })));
    const creates = await Promise.all(boots.map((_, i) => commands.createVolume(rt, caller, { name: `disk-${i}`, sizeGb: 1 })));
    for (const op of [...boots, ...creates]) expect((await settled(rt, op.operation.id)).status).toBe('SUCCEEDED');

    const attaches = await Promise.all(
      boots.map((b, i) => commands.attachVolume(rt, caller, { instanceId: b.instance!.id, volumeId: creates[i]!.volume.id })),
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ops = await Promise.all(attaches.map((a) => rt.store.readStream(operationStream(a.operation.id))));
      const plugging = ops.filter((events) => events.some((e) => e.type === 'OperationStepStarted' && e.data.name === 'attachToVm')).length;
      const done = ops.filter((events) => events.some((e) => e.type === 'OperationSucceeded')).length;
      if (plugging > 0 && done < attaches.length) break;
      if (Date.now() > deadline) throw new Error(`no attach reached the agent in time; worker said:\n${first.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    first.proc.kill('SIGKILL');
    await first.exited;
    workers.push(workerProcess(config));

    const operations = await Promise.all(attaches.map((a) => settled(rt, a.operation.id)));
    const client = agent.client({ privateKey });
    try {
      const { vms } = await client.call('listVms', {});
      for (const [i, a] of attaches.entries()) {
        const volume: Volume = (await readFolded(rt, volumeStream(a.volume.id), volumeDecider)).state!;
        const instance = await instanceOf(rt, a.instance!.id);
        const vm = vms.find((v) => v.labels.instanceId === instance.id)!;
        const held = vm.volumes.filter((v) => v.volumeId === volume.id).length;
        expect(volume.task).toBeNull();
        expect(instance.task).toBeNull();
        expect(['IN_USE', 'AVAILABLE']).toContain(volume.state);
        if (operations[i]!.status === 'SUCCEEDED') {
          expect(volume).toMatchObject({ state: 'IN_USE', attachedTo: instance.id });
          expect(held).toBe(1);
        } else {
          expect(operations[i]!.status).toBe('FAILED');
          expect(volume).toMatchObject({ state: 'AVAILABLE', attachedTo: null });
          expect(held).toBe(0);
        }
        // Each fact recorded once, however often its activity ran.
        const types = (await rt.store.readStream(volumeStream(volume.id))).map((e) => e.type);
        expect(types.filter((t) => t === 'VolumeAttached').length).toBeLessThanOrEqual(1);
      }
    } finally {
      client.close();
    }
  });
});
