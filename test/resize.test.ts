import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { vmNameOf } from '../activities/instanceRecords.js';
import { StratusError } from '../domain/errors.js';
import { instanceStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import type { Instance } from '../domain/instance.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import type { AgentProcess } from './support/hostagent.js';
import { readVolume } from '../activities/volumeRecords.js';
import { adminCaller, hostOf, instanceOf, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    if (e instanceof StratusError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe.sequential('resize on sim hosts, on real Temporal, PostgreSQL and sim agents over SSH', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let caller: Caller;
  let privateKey: string;
  let publicKey: string;
  let imageId: string;
  const flavors: Record<string, string> = {};
  const hosts: { agent: AgentProcess; id: string }[] = [];
  const hostSize = { vcpus: 4, memoryMb: 4096, diskGb: 100 };

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'resize_e');
    rt = stack.rt;
    privateKey = stack.key.privateKey;
    publicKey = stack.key.publicKey;
    worker = await startWorker(rt);
    caller = adminCaller();
    for (const name of ['rs-1', 'rs-2']) {
      const { agent, host } = await simHost(rt, caller, publicKey, name, hostSize);
      hosts.push({ agent, id: host.id });
    }
    for (const [name, vcpus, memoryMb, diskGb] of [
      ['m1.tiny', 1, 512, 1], ['m1.small', 1, 2048, 20], ['r1.mid', 2, 1536, 20], ['fill.a', 1, 3584, 1], ['fill.b', 1, 3072, 1], ['d1.two', 1, 512, 2],
    ] as const) {
      flavors[name] = (await commands.createFlavor(rt, caller, { name, vcpus, memoryMb, diskGb })).flavor.id;
    }
    imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await Promise.all(hosts.map((h) => h.agent.stop()));
    await rt?.close();
  });

  const vmOn = async (hostId: string, instance: Instance) => {
    const client = hosts.find((h) => h.id === hostId)!.agent.client({ privateKey });
    try {
      return (await client.call('listVms', {})).vms.find((v) => v.name === vmNameOf(instance));
    } finally {
      client.close();
    }
  };
  const boot = async (name: string, flavor = 'm1.tiny', image = imageId) => {
    const { operation, instance } = await commands.bootInstance(rt, caller, { name, flavorId: flavors[flavor]!, imageId: image });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    return instanceOf(rt, instance!.id);
  };
  const remove = async (instance: Instance) => {
    const { operation } = await commands.deleteInstance(rt, caller, { id: instance.id });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
  };
  const resize = async (instance: Instance, flavor: string) => {
    const { operation } = await commands.resizeInstance(rt, caller, { id: instance.id, flavorId: flavors[flavor]! });
    return settled(rt, operation.id);
  };

  it('a running instance with room on its host is resized in place: RUNNING again with the new size, its claim changed in one event', async () => {
    const before = await boot('grow-1');
    const done = await resize(before, 'm1.small');
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => s.name)).toEqual(['claimResize', 'stopVm', 'resizeVm', 'recordResized', 'startVm', 'finishResize']);
    const after = await instanceOf(rt, before.id);
    expect(after).toMatchObject({ state: 'RUNNING', task: null, hostId: before.hostId, flavor: { id: flavors['m1.small'], memoryMb: 2048, diskGb: 20 } });
    expect(await vmOn(before.hostId!, before)).toMatchObject({ state: 'running', vcpus: 1, memoryMb: 2048, diskGb: 20 });
    expect((await hostOf(rt, before.hostId!)).claims[before.id]).toEqual({ operationId: done.id, resources: { vcpus: 1, memoryMb: 2048, diskGb: 20 } });
    const hostEvents = (await rt.store.readStream(`host-${before.hostId}`)).filter((e) => e.metadata.operationId === done.id);
    expect(hostEvents.map((e) => e.type)).toEqual(['HostClaimResized']);
    await remove(after);
  });

  it('a stopped instance is resized without being started: it stays STOPPED', async () => {
    const before = await boot('grow-2');
    expect((await settled(rt, (await commands.stopInstance(rt, caller, { id: before.id })).operation.id)).status).toBe('SUCCEEDED');
    const done = await resize(before, 'm1.small');
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => s.name)).toEqual(['claimResize', 'resizeVm', 'recordResized', 'finishResize']);
    expect(await instanceOf(rt, before.id)).toMatchObject({ state: 'STOPPED', flavor: { memoryMb: 2048 } });
    expect(await vmOn(before.hostId!, before)).toMatchObject({ state: 'stopped', memoryMb: 2048 });
    await remove(await instanceOf(rt, before.id));
  });

  it('a resize the host refuses leaves the instance RUNNING with its old flavor and its old claim', async () => {
    const before = await boot('refused-grow');
    const agent = hosts.find((h) => h.id === before.hostId)!.agent;
    await setFaults(agent, { failMethods: ['resizeVm'], failNamePattern: '^refused-grow' });
    try {
      const done = await resize(before, 'm1.small');
      expect(done).toMatchObject({ status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } });
    } finally {
      await setFaults(agent, {});
    }
    const after = await instanceOf(rt, before.id);
    expect(after).toMatchObject({ state: 'RUNNING', task: null, hostId: before.hostId, flavor: { id: flavors['m1.tiny'] }, errorReason: null });
    expect((await hostOf(rt, before.hostId!)).claims[before.id]!.resources).toEqual({ vcpus: 1, memoryMb: 512, diskGb: 1 });
    expect(await vmOn(before.hostId!, before)).toMatchObject({ state: 'running', memoryMb: 512 });
    await remove(after);
  });

  it('refused before anything is written: a disk below the image or the current disk BAD_USER_INPUT, the same flavor BAD_USER_INPUT, another project NOT_FOUND', async () => {
    const bigImage = (await commands.registerImage(rt, caller, { name: 'fat', format: 'qcow2', sizeBytes: 5 * 2 ** 30 })).image.id;
    const instance = await boot('check-1', 'm1.tiny', bigImage);
    const version = (await rt.store.readStream(instanceStream(instance.id))).length;
    expect(await refusal(commands.resizeInstance(rt, caller, { id: instance.id, flavorId: flavors['d1.two']! }))).toMatchObject({
      code: 'BAD_USER_INPUT',
      message: expect.stringMatching(/smaller than its image's 5 GB/),
    });
    expect(await refusal(commands.resizeInstance(rt, caller, { id: instance.id, flavorId: flavors['m1.tiny']! }))).toMatchObject({ code: 'BAD_USER_INPUT' });
    const grown = await boot('check-2', 'm1.small');
    expect(await refusal(commands.resizeInstance(rt, caller, { id: grown.id, flavorId: flavors['d1.two']! }))).toMatchObject({
      code: 'BAD_USER_INPUT',
      message: expect.stringMatching(/never shrinks/),
    });
    const stranger: Caller = { tokenId: 'stranger', projectId: randomUUID(), role: 'MEMBER' };
    expect(await refusal(commands.resizeInstance(rt, stranger, { id: instance.id, flavorId: flavors['m1.small']! }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await refusal(commands.resizeInstance(rt, caller, { id: instance.id, flavorId: randomUUID() }))).toMatchObject({ code: 'NOT_FOUND' });
    expect((await rt.store.readStream(instanceStream(instance.id))).length).toBe(version);
    await remove(instance);
    await remove(grown);
  });

  it('without room on its host the instance moves cold to a host that has it (NO_VALID_HOST when none does), and runs there', async () => {
    const fillA = await boot('fill-a', 'fill.a');
    const x = await boot('mover', 'm1.tiny');
    expect(x.hostId).not.toBe(fillA.hostId);
    // It holds a volume, which must come along when it moves.
    const made = await commands.createVolume(rt, caller, { name: 'mover-data', sizeGb: 1 });
    expect((await settled(rt, made.operation.id)).status).toBe('SUCCEEDED');
    const attach = await commands.attachVolume(rt, caller, { instanceId: x.id, volumeId: made.volume.id });
    expect((await settled(rt, attach.operation.id)).status).toBe('SUCCEEDED');
    const fillB = await boot('fill-b', 'fill.b');
    expect(fillB.hostId).toBe(x.hostId);

    const nowhere = await resize(x, 'r1.mid');
    expect(nowhere).toMatchObject({ status: 'FAILED', error: { code: 'NO_VALID_HOST' } });
    expect(await instanceOf(rt, x.id)).toMatchObject({ state: 'RUNNING', task: null, hostId: x.hostId, flavor: { id: flavors['m1.tiny'] } });

    const third = await simHost(rt, caller, publicKey, 'rs-3', hostSize);
    hosts.push({ agent: third.agent, id: third.host.id });
    const done = await resize(x, 'r1.mid');
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => s.name)).toEqual([
      'claimResize', 'stopVm', 'plugAttachments', 'defineOnTarget', 'copyDisk', 'removeFromSource', 'recordResized', 'releaseSourceClaim', 'startVm', 'finishResize',
    ]);
    const after = await instanceOf(rt, x.id);
    expect(after).toMatchObject({ state: 'RUNNING', task: null, hostId: third.host.id, flavor: { id: flavors['r1.mid'], vcpus: 2, memoryMb: 1536 } });
    expect(await vmOn(third.host.id, x)).toMatchObject({ state: 'running', vcpus: 2, memoryMb: 1536, volumes: [{ volumeId: made.volume.id, device: 'vdb' }] });
    expect(await readVolume(rt, made.volume.id)).toMatchObject({ state: 'IN_USE', attachedTo: x.id, device: 'vdb', task: null });
    expect(await vmOn(x.hostId!, x)).toBeUndefined();
    expect((await hostOf(rt, x.hostId!)).claims[x.id]).toBeUndefined();
    expect((await hostOf(rt, third.host.id)).claims[x.id]!.resources).toEqual({ vcpus: 2, memoryMb: 1536, diskGb: 20 });
  });
});
