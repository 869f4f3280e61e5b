import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { flavorIdFor } from '../domain/catalog.js';
import { StratusError } from '../domain/errors.js';
import { instanceStream, operationStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import type { InstanceState } from '../domain/instance.js';
import { operationIdFor, workflowIdOf } from '../domain/operation.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import type { AgentProcess } from './support/hostagent.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { adminCaller, hostOf, instanceOf, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

/** Rejects with the StratusError's code and details, for toMatchObject. */
async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    if (e instanceof StratusError) return { code: e.code, details: e.details, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('instance lifecycle through the command layer, on real Temporal, PostgreSQL and sim agents over SSH', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let caller: Caller;
  let flavorId: string;
  let imageId: string;
  let hostId: string;
  let controllerKey: string;

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'lifecycle_e');
    rt = stack.rt;
    worker = await startWorker(rt);
    caller = adminCaller();
    controllerKey = stack.key.privateKey;
    const h = await simHost(rt, caller, stack.key.publicKey, 'sim-1');
    agent = h.agent;
    hostId = h.host.id;
    flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, caller, { name: 'cirros-0.6', format: 'qcow2', sizeBytes: 21_430_272 })).image.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await agent?.stop();
    await rt?.close();
  });

  const vmState = async (instanceId: string) => {
    const instance = await instanceOf(rt, instanceId);
    const client = agent.client({ privateKey: controllerKey });
    try {
      return (await client.call('getVm', { name: vmNameOf(instance) })).state;
    } finally {
      client.close();
    }
  };

  it('registerHost takes the capacity from the agent over SSH, and createFlavor names the flavor', async () => {
    const host = await hostOf(rt, hostId);
    expect(host).toMatchObject({ state: 'UP', hypervisor: 'sim', capacity: { vcpus: 1000, memoryMb: 1024 * 1024 } });
    expect(flavorId).toBe(flavorIdFor('m1.tiny'));
  });

  it('a boot reaches RUNNING on the agent, with every runbook step recorded once', async () => {
    const { operation, instance } = await commands.bootInstance(rt, caller, { name: 'web-1', flavorId, imageId });
    expect(operation).toMatchObject({ kind: 'BOOT', status: 'PENDING', resourceId: instance!.id, workflowId: workflowIdOf(operation.id) });
    expect(instance).toMatchObject({ state: 'BUILDING', task: 'BOOT' });
    const done = await settled(rt, operation.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.runId).toBeTruthy();
    expect(done.steps.map((s) => [s.name, s.status])).toEqual([
      ['schedule', 'SUCCEEDED'],
      ['allocateAddress', 'SUCCEEDED'],
      ['plugPort', 'SUCCEEDED'],
      ['createVm', 'SUCCEEDED'],
      ['startVm', 'SUCCEEDED'],
      ['recordRunning', 'SUCCEEDED'],
    ]);
    const booted = await instanceOf(rt, instance!.id);
    expect(booted).toMatchObject({ state: 'RUNNING', task: null, hostId, launchedAt: expect.any(String) });
    expect(await vmState(instance!.id)).toBe('running');
    expect((await hostOf(rt, hostId)).claims[instance!.id]).toMatchObject({ operationId: operation.id });
    const metadata = (await rt.store.readStream(instanceStream(instance!.id))).map((e) => e.metadata);
    expect(metadata.at(-1)).toMatchObject({ actor: 'test-admin', operationId: operation.id, workflowId: workflowIdOf(operation.id), runId: done.runId });
  });

  it('every transition of the table works end to end, and one the state does not allow is CONFLICT with nothing written', async () => {
    const boot = await commands.bootInstance(rt, caller, { name: 'cycle', flavorId, imageId });
    await settled(rt, boot.operation.id);
    const id = boot.instance!.id;
    const steps: Array<[string, () => Promise<commands.LifecycleResult>, InstanceState, string]> = [
      ['stop', () => commands.stopInstance(rt, caller, { id }), 'STOPPED', 'stopped'],
      ['start', () => commands.startInstance(rt, caller, { id }), 'RUNNING', 'running'],
      ['reboot', () => commands.rebootInstance(rt, caller, { id, hard: false }), 'RUNNING', 'running'],
      ['pause', () => commands.pauseInstance(rt, caller, { id }), 'PAUSED', 'paused'],
      ['hard reboot from PAUSED', () => commands.rebootInstance(rt, caller, { id, hard: true }), 'RUNNING', 'running'],
      ['suspend', () => commands.suspendInstance(rt, caller, { id }), 'SUSPENDED', 'suspended'],
      ['resume', () => commands.resumeInstance(rt, caller, { id }), 'RUNNING', 'running'],
      ['pause again', () => commands.pauseInstance(rt, caller, { id }), 'PAUSED', 'paused'],
      ['unpause', () => commands.unpauseInstance(rt, caller, { id }), 'RUNNING', 'running'],
      ['stop again', () => commands.stopInstance(rt, caller, { id }), 'STOPPED', 'stopped'],
      ['hard reboot from STOPPED', () => commands.rebootInstance(rt, caller, { id, hard: true }), 'RUNNING', 'running'],
    ];
    for (const [what, act, state, vm] of steps) {
      const { operation } = await act();
      const done = await settled(rt, operation.id);
      expect(done.status, what).toBe('SUCCEEDED');
      expect((await instanceOf(rt, id)).state, what).toBe(state);
      expect(await vmState(id), what).toBe(vm);
    }

    const before = (await rt.store.readStream(instanceStream(id))).length;
    expect(await refusal(commands.unpauseInstance(rt, caller, { id, clientRequestId: 'unpause-running' }))).toMatchObject({ code: 'CONFLICT' });
    expect(await refusal(commands.resumeInstance(rt, caller, { id }))).toMatchObject({ code: 'CONFLICT' });
    expect(await refusal(commands.startInstance(rt, caller, { id }))).toMatchObject({ code: 'CONFLICT' });
    expect((await rt.store.readStream(instanceStream(id))).length).toBe(before);
    const refusedOp = operationIdFor({ projectId: caller.projectId, clientRequestId: 'unpause-running', randomId: 'x' });
    expect(await rt.store.readStream(operationStream(refusedOp))).toHaveLength(0);
    await expect(rt.temporal.workflow.getHandle(workflowIdOf(refusedOp)).describe()).rejects.toThrow();

    const del = await commands.deleteInstance(rt, caller, { id });
    const deleted = await settled(rt, del.operation.id);
    expect(deleted.steps.map((s) => s.name)).toEqual(['destroyVm', 'releaseVolumes', 'releaseClaim', 'releaseAddresses', 'recordDeleted']);
    expect((await instanceOf(rt, id)).state).toBe('DELETED');
    expect((await hostOf(rt, hostId)).claims[id]).toBeUndefined();
    await expect(vmState(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await refusal(commands.startInstance(rt, caller, { id }))).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('a busy instance refuses a second action with CONFLICT naming the running operation', async () => {
    await setFaults(agent, { latencyMs: 1500, latencyNamePattern: '^slow' });
    try {
      const boot = await commands.bootInstance(rt, caller, { name: 'slow-boot', flavorId, imageId });
      const id = boot.instance!.id;
      const before = (await rt.store.readStream(instanceStream(id))).length;
      const busy = await refusal(commands.stopInstance(rt, caller, { id, clientRequestId: 'stop-while-booting' }));
      expect(busy).toMatchObject({ code: 'CONFLICT', details: { runningOperation: { id: boot.operation.id, kind: 'BOOT' } } });
      expect(await refusal(commands.deleteInstance(rt, caller, { id }))).toMatchObject({ code: 'CONFLICT' });
      const refusedOp = operationIdFor({ projectId: caller.projectId, clientRequestId: 'stop-while-booting', randomId: 'x' });
      expect(await rt.store.readStream(operationStream(refusedOp))).toHaveLength(0);
      expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
      expect((await rt.store.readStream(instanceStream(id))).length).toBeGreaterThan(before);
    } finally {
      await setFaults(agent, {});
    }
  });

  it('a repeated clientRequestId returns the first operation and starts no second workflow, even when the repeats race', async () => {
    const input = { name: 'once', flavorId, imageId, clientRequestId: 'boot-once' };
    const results = await Promise.all([1, 2, 3].map(() => commands.bootInstance(rt, caller, input)));
    const opIds = new Set(results.map((r) => r.operation.id));
    const instanceIds = new Set(results.map((r) => r.instance!.id));
    expect(opIds.size).toBe(1);
    expect(instanceIds.size).toBe(1);
    const [operationId] = [...opIds];
    expect((await settled(rt, operationId!)).status).toBe('SUCCEEDED');
    const again = await commands.bootInstance(rt, caller, input);
    expect(again.operation).toMatchObject({ id: operationId, status: 'SUCCEEDED' });
    expect(again.instance).toMatchObject({ id: [...instanceIds][0], state: 'RUNNING' });
    // One instance named "once" in the whole log, one run of the workflow id.
    const boots = (await rt.store.readAll({ streamPrefix: 'instance-', limit: 100_000 })).filter(
      (e) => e.type === 'InstanceBootRequested' && e.data.name === 'once',
    );
    expect(boots).toHaveLength(1);
    const runs = [];
    for await (const w of rt.temporal.workflow.list({ query: `WorkflowId = '${workflowIdOf(operationId!)}'` })) runs.push(w.runId);
    expect(runs.length).toBeLessThanOrEqual(1);

    // The same id for another action on another resource is refused.
    expect(await refusal(commands.stopInstance(rt, caller, { id: again.instance!.id, clientRequestId: 'boot-once' }))).toMatchObject({ code: 'CONFLICT' });
  });

  it('a boot that fails at the agent ends in ERROR with its reason, releases its claim and leaves no VM on the agent', async () => {
    await setFaults(agent, { failMethods: ['startVm'], failNamePattern: '^doomed' });
    try {
      const { operation, instance } = await commands.bootInstance(rt, caller, { name: 'doomed-1', flavorId, imageId });
      const done = await settled(rt, operation.id);
      expect(done).toMatchObject({ status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } });
      expect(done.steps.map((s) => [s.name, s.status])).toEqual([
        ['schedule', 'SUCCEEDED'],
        ['allocateAddress', 'SUCCEEDED'],
        ['plugPort', 'SUCCEEDED'],
        ['createVm', 'SUCCEEDED'],
        ['startVm', 'FAILED'],
        ['destroyVm', 'SUCCEEDED'],
        ['unplugPort', 'SUCCEEDED'],
        ['releaseAddress', 'SUCCEEDED'],
        ['releaseClaim', 'SUCCEEDED'],
      ]);
      const failed = await instanceOf(rt, instance!.id);
      expect(failed).toMatchObject({ state: 'ERROR', task: null });
      expect(failed.errorReason).toMatch(/^HYPERVISOR_ERROR: .*injected startVm failure/);
      expect((await hostOf(rt, hostId)).claims[instance!.id]).toBeUndefined();
      await expect(vmState(instance!.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });

      // A failed boot is not retried (delete and boot again); a failed power action is.
      expect(await refusal(commands.retryOperation(rt, caller, { id: operation.id }))).toMatchObject({ code: 'CONFLICT' });
      const del = await commands.deleteInstance(rt, caller, { id: instance!.id });
      expect((await settled(rt, del.operation.id)).status).toBe('SUCCEEDED');
    } finally {
      await setFaults(agent, {});
    }
  });

  it('retryOperation runs a failed power action again as a new run of the same workflow id', async () => {
    const boot = await commands.bootInstance(rt, caller, { name: 'retry-me', flavorId, imageId });
    await settled(rt, boot.operation.id);
    const id = boot.instance!.id;
    await setFaults(agent, { failMethods: ['pauseVm'], failNamePattern: '^retry-me' });
    const { operation } = await commands.pauseInstance(rt, caller, { id });
    const failed = await settled(rt, operation.id);
    expect(failed).toMatchObject({ status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } });
    expect(await instanceOf(rt, id)).toMatchObject({ state: 'RUNNING', task: null });
    await setFaults(agent, {});
    const retried = await commands.retryOperation(rt, caller, { id: operation.id });
    expect(retried.operation).toMatchObject({ id: operation.id, status: 'RUNNING' });
    expect(retried.operation.runId).not.toBe(failed.runId);
    const done = await settled(rt, operation.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(await instanceOf(rt, id)).toMatchObject({ state: 'PAUSED', task: null });
    expect(await vmState(id)).toBe('paused');
    expect(await refusal(commands.retryOperation(rt, caller, { id: operation.id }))).toMatchObject({ code: 'CONFLICT' });
  });

  it('refusals change nothing: another project gets NOT_FOUND, a reader FORBIDDEN, an oversized flavor NO_VALID_HOST', async () => {
    const boot = await commands.bootInstance(rt, caller, { name: 'mine', flavorId, imageId });
    await settled(rt, boot.operation.id);
    const id = boot.instance!.id;
    const stranger: Caller = { tokenId: 'stranger', projectId: '00000000-0000-4000-8000-000000000001', role: 'MEMBER' };
    const reader: Caller = { tokenId: 'reader', projectId: caller.projectId, role: 'READER' };
    const before = (await rt.store.readStream(instanceStream(id))).length;
    expect(await refusal(commands.stopInstance(rt, stranger, { id }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await refusal(commands.stopInstance(rt, reader, { id }))).toMatchObject({ code: 'FORBIDDEN' });
    expect(await refusal(commands.createFlavor(rt, stranger, { name: 'x', vcpus: 1, memoryMb: 1, diskGb: 1 }))).toMatchObject({ code: 'FORBIDDEN' });
    expect((await rt.store.readStream(instanceStream(id))).length).toBe(before);
    const huge = (await commands.createFlavor(rt, caller, { name: 'm1.huge', vcpus: 4096, memoryMb: 512, diskGb: 1 })).flavor.id;
    expect(await refusal(commands.bootInstance(rt, caller, { name: 'too-big', flavorId: huge, imageId, clientRequestId: 'too-big' }))).toMatchObject({
      code: 'NO_VALID_HOST',
    });
    const refusedOp = operationIdFor({ projectId: caller.projectId, clientRequestId: 'too-big', randomId: 'x' });
    expect(await rt.store.readStream(operationStream(refusedOp))).toHaveLength(0);
    expect(await refusal(commands.bootInstance(rt, caller, { name: 'no-flavor', flavorId: imageId, imageId }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await refusal(commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 }))).toMatchObject({ code: 'CONFLICT' });
  });
});
