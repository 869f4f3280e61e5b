import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFolded } from '../activities/events.js';
import { imageStream, operationStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { imageFold } from '../domain/image.js';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { imageStore } from '../server/imageStore.js';
import type { Runtime, RuntimeConfig } from '../server/runtime.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, lifecycleRuntime, setFaults, settled, simHost, workerProcess } from './support/lifecycleStack.js';

describe('a worker killed in the middle of an instance snapshot, on real Temporal, PostgreSQL and a sim agent', () => {
  let rt: Runtime;
  let config: RuntimeConfig;
  let caller: Caller;
  let agent: AgentProcess;
  const workers: ReturnType<typeof workerProcess>[] = [];

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'snapshot_crash');
    rt = stack.rt;
    config = stack.config;
    caller = adminCaller();
    ({ agent } = await simHost(rt, caller, stack.key.publicKey, 'snap-crash-1'));
  });
  afterAll(async () => {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await agent?.stop();
    await rt?.close();
  });

  it('a new worker finishes it once: the image ACTIVE with one upload, one file in the store, nothing left in its tmp or on the host', async () => {
    const first = workerProcess(config);
    workers.push(first);
    const { flavor } = await commands.createFlavor(rt, caller, { name: 'sc.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 });
    const { image } = await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 });
    const boot = await commands.bootInstance(rt, caller, { name: 'snap-me', flavorId: flavor.id, imageId: image.id });
    expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');

    // The host takes 3 s to write the snapshot, so the kill lands inside the snapshotVm step.
    await setFaults(agent, { latencyMs: 3000, latencyMethods: 'snapshotVm' });
    const snap = await commands.snapshotInstance(rt, caller, { id: boot.instance!.id, imageName: 'snap-of-snap-me' });
    const madeId = snap.image!.id;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const events = await rt.store.readStream(operationStream(snap.operation.id));
      if (events.some((e) => e.type === 'OperationStepStarted' && e.data.name === 'snapshotVm')) break;
      if (Date.now() > deadline) throw new Error(`the snapshot never started; worker said:\n${first.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    first.proc.kill('SIGKILL');
    await first.exited;
    await setFaults(agent, {});
    workers.push(workerProcess(config));

    const done = await settled(rt, snap.operation.id);
    expect(done.status).toBe('SUCCEEDED');
    // One run: the kill moved its activity to the new worker, it did not start the workflow again.
    expect((await rt.temporal.workflow.getHandle(workflowIdOf(snap.operation.id)).describe()).runId).toBe(done.runId);
    const opEvents = await rt.store.readStream(operationStream(snap.operation.id));
    const signature = opEvents.map((e) => `${e.type}:${'name' in e.data ? String(e.data.name) : ''}`);
    expect(new Set(signature).size, signature.join(', ')).toBe(signature.length);

    const imageEvents = (await rt.store.readStream(imageStream(madeId))).map((e) => e.type);
    expect(imageEvents).toEqual(['ImageCreated', 'ImageUploadStarted', 'ImageUploaded']);
    const made = (await readFolded(rt, imageStream(madeId), imageFold)).state!;
    expect(made.status).toBe('ACTIVE');
    const store = imageStore(rt);
    expect(readdirSync(store.blobDir)).toEqual([made.checksum]);
    expect(existsSync(store.tmpDir) ? readdirSync(store.tmpDir) : []).toEqual([]);
    const hostDir = join(agent.stateDir, 'sim', 'images');
    expect(existsSync(hostDir) ? readdirSync(hostDir) : []).toEqual([]);
  });
});
