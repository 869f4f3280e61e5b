import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { StratusError } from '../domain/errors.js';
import { volumeStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { volumeDecider, type Volume } from '../domain/volume.js';
import { readFolded } from '../activities/events.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import type { AgentProcess } from './support/hostagent.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { adminCaller, instanceOf, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    if (e instanceof StratusError) return { code: e.code, details: e.details, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('volumes through the command layer, on real Temporal, PostgreSQL and a sim agent over SSH', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let caller: Caller;
  let flavorId: string;
  let imageId: string;
  let controllerKey: string;

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'volumes_e');
    rt = stack.rt;
    worker = await startWorker(rt);
    caller = adminCaller();
    controllerKey = stack.key.privateKey;
    agent = (await simHost(rt, caller, stack.key.publicKey, 'sim-vol')).agent;
    flavorId = (await commands.createFlavor(rt, caller, { name: 'v1.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, caller, { name: 'vol-image', format: 'qcow2', sizeBytes: 1 })).image.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await agent?.stop();
    await rt?.close();
  });

  const volumeOf = async (id: string): Promise<Volume> => (await readFolded(rt, volumeStream(id), volumeDecider)).state!;
  const succeeded = async (p: Promise<{ operation: { id: string } }>) => {
    const { operation } = await p;
    const done = await settled(rt, operation.id);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    return done;
  };
  const boot = async (name: string) => {
    const { operation, instance } = await commands.bootInstance(rt, caller, { name, flavorId, imageId });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    return instance!.id;
  };
  const newVolume = async (name: string, sizeGb = 1) => {
    const { operation, volume } = await commands.createVolume(rt, caller, { name, sizeGb });
    await succeeded(Promise.resolve({ operation }));
    return volume.id;
  };
  const vmVolumes = async (instanceId: string) => {
    const client = agent.client({ privateKey: controllerKey });
    try {
      return (await client.call('getVm', { name: vmNameOf(await instanceOf(rt, instanceId)) })).volumes.map((v) => v.volumeId);
    } finally {
      client.close();
    }
  };

  it('a volume goes CREATING → AVAILABLE → IN_USE → AVAILABLE → DELETED, with the VM holding it only while attached', async () => {
    const { operation, volume } = await commands.createVolume(rt, caller, { name: 'data-1', sizeGb: 2 });
    expect(operation).toMatchObject({ kind: 'CREATE_VOLUME', status: 'PENDING', resourceId: volume.id });
    expect(volume).toMatchObject({ state: 'CREATING', task: 'CREATE_VOLUME', sizeGb: 2 });
    const created = await settled(rt, operation.id);
    expect(created.steps.map((s) => [s.name, s.status])).toEqual([
      ['createVolumeFile', 'SUCCEEDED'],
      ['recordAvailable', 'SUCCEEDED'],
    ]);
    expect(await volumeOf(volume.id)).toMatchObject({ state: 'AVAILABLE', task: null });

    const instanceId = await boot('vol-web-1');
    const attach = await commands.attachVolume(rt, caller, { instanceId, volumeId: volume.id });
    expect(attach.volume).toMatchObject({ state: 'ATTACHING', task: 'ATTACH_VOLUME' });
    expect(attach.instance).toMatchObject({ task: 'ATTACH_VOLUME' });
    const attached = await settled(rt, attach.operation.id);
    expect(attached.steps.map((s) => s.name)).toEqual(['attachToVm', 'recordInUse']);
    expect(await volumeOf(volume.id)).toMatchObject({ state: 'IN_USE', attachedTo: instanceId, device: 'vdb', task: null });
    expect(await instanceOf(rt, instanceId)).toMatchObject({ state: 'RUNNING', task: null });
    expect(await vmVolumes(instanceId)).toEqual([volume.id]);

    expect(await refusal(commands.deleteVolume(rt, caller, { id: volume.id }))).toMatchObject({ code: 'CONFLICT' });

    await succeeded(commands.detachVolume(rt, caller, { instanceId, volumeId: volume.id }));
    expect(await volumeOf(volume.id)).toMatchObject({ state: 'AVAILABLE', attachedTo: null, device: null });
    expect(await vmVolumes(instanceId)).toEqual([]);

    await succeeded(commands.deleteVolume(rt, caller, { id: volume.id }));
    expect(await volumeOf(volume.id)).toMatchObject({ state: 'DELETED' });
    expect(await refusal(commands.attachVolume(rt, caller, { instanceId, volumeId: volume.id }))).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('a volume attached to one instance is refused to a second; a stopped instance takes it cold and shows it at its next start', async () => {
    const volumeId = await newVolume('data-2');
    const [a, b] = [await boot('vol-a'), await boot('vol-b')];
    await succeeded(commands.attachVolume(rt, caller, { instanceId: a, volumeId }));
    expect(await refusal(commands.attachVolume(rt, caller, { instanceId: b, volumeId }))).toMatchObject({ code: 'CONFLICT' });
    expect(await refusal(commands.detachVolume(rt, caller, { instanceId: b, volumeId }))).toMatchObject({ code: 'CONFLICT' });

    await succeeded(commands.stopInstance(rt, caller, { id: a }));
    await succeeded(commands.detachVolume(rt, caller, { instanceId: a, volumeId }));
    await succeeded(commands.stopInstance(rt, caller, { id: b }));
    await succeeded(commands.attachVolume(rt, caller, { instanceId: b, volumeId }));
    expect(await volumeOf(volumeId)).toMatchObject({ state: 'IN_USE', attachedTo: b });
    await succeeded(commands.startInstance(rt, caller, { id: b }));
    expect(await vmVolumes(b)).toEqual([volumeId]);
    expect(await vmVolumes(a)).toEqual([]);
  });

  it('deleting an instance detaches its volumes: they survive AVAILABLE and attach elsewhere', async () => {
    const volumeId = await newVolume('data-3');
    const doomed = await boot('vol-doomed');
    await succeeded(commands.attachVolume(rt, caller, { instanceId: doomed, volumeId }));
    const deleted = await succeeded(commands.deleteInstance(rt, caller, { id: doomed }));
    expect(deleted.steps.map((s) => s.name)).toContain('releaseVolumes');
    expect(await volumeOf(volumeId)).toMatchObject({ state: 'AVAILABLE', attachedTo: null, task: null });
    const next = await boot('vol-heir');
    await succeeded(commands.attachVolume(rt, caller, { instanceId: next, volumeId }));
    expect(await vmVolumes(next)).toEqual([volumeId]);
  });

  it('snapshots: one of an AVAILABLE volume becomes AVAILABLE, a volume made from it is at least its size, none of an in-use volume', async () => {
    const volumeId = await newVolume('data-4', 3);
    const snap = await commands.snapshotVolume(rt, caller, { volumeId, name: 'before-upgrade' });
    expect(snap.operation.kind).toBe('SNAPSHOT_VOLUME');
    await settled(rt, snap.operation.id);
    const [snapshot] = (await volumeOf(volumeId)).snapshots;
    expect(snapshot).toMatchObject({ name: 'before-upgrade', state: 'AVAILABLE', sizeGb: 3, volumeId });

    const copy = await commands.createVolume(rt, caller, { name: 'data-4-copy', sizeGb: 1, snapshotId: snapshot!.id });
    expect(copy.volume.sizeGb).toBe(3);
    await settled(rt, copy.operation.id);
    expect(await volumeOf(copy.volume.id)).toMatchObject({ state: 'AVAILABLE', sourceSnapshotId: snapshot!.id });

    const instanceId = await boot('vol-snap');
    await succeeded(commands.attachVolume(rt, caller, { instanceId, volumeId }));
    expect(await refusal(commands.snapshotVolume(rt, caller, { volumeId, name: 'live' }))).toMatchObject({ code: 'CONFLICT' });
  });

  it('20 concurrent attaches of one volume to 20 instances: exactly one wins, the others are CONFLICT, no VM holds it twice', async () => {
    const volumeId = await newVolume('contended');
    const instances = await Promise.all(Array.from({ length: 20 }, (_, i) => boot(`contender-${i}`)));
    const results = await Promise.allSettled(instances.map((instanceId) => commands.attachVolume(rt, caller, { instanceId, volumeId })));
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(19);
    for (const e of lost) expect(e).toMatchObject({ code: 'CONFLICT' });
    await settled(rt, won[0]!.operation.id);
    const winner = won[0]!.instance!.id;
    expect(await volumeOf(volumeId)).toMatchObject({ state: 'IN_USE', attachedTo: winner });
    const held = await Promise.all(instances.map(vmVolumes));
    expect(held.flat()).toEqual([volumeId]);
    expect(held[instances.indexOf(winner)]).toEqual([volumeId]);
    // The losers' instances were never held: each is free for its next action.
    for (const id of instances) expect((await instanceOf(rt, id)).task).toBeNull();
  });

  it('retryOperation runs a failed volume operation again: a failed create, attach and snapshot each succeed on their retry', async () => {
    const failing = async (method: string, p: () => Promise<{ operation: { id: string } }>) => {
      await setFaults(agent, { failMethods: method, failCode: 'HYPERVISOR_ERROR' });
      try {
        const { operation } = await p();
        const failed = await settled(rt, operation.id);
        expect(failed).toMatchObject({ status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } });
        return operation.id;
      } finally {
        await setFaults(agent, {});
      }
    };
    const retried = async (operationId: string) => {
      const { operation } = await commands.retryOperation(rt, caller, { id: operationId });
      expect(operation.status).toBe('RUNNING');
      await rt.temporal.workflow.getHandle(`op-${operationId}`).result();
      const done = await settled(rt, operationId);
      expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    };

    // Create: the failed one leaves the volume ERROR; its retry creates it.
    let volumeId = '';
    const create = await failing('createVolume', async () => {
      const r = await commands.createVolume(rt, caller, { name: 'retried-create', sizeGb: 1 });
      volumeId = r.volume.id;
      return r;
    });
    expect(await volumeOf(volumeId)).toMatchObject({ state: 'ERROR', task: null });
    await retried(create);
    expect(await volumeOf(volumeId)).toMatchObject({ state: 'AVAILABLE', task: null, errorReason: null });

    // Attach: the failed one leaves it AVAILABLE and the instance free; its retry attaches it, once.
    const instanceId = await boot('retry-attach');
    const attach = await failing('attachVolume', () => commands.attachVolume(rt, caller, { instanceId, volumeId }));
    expect(await volumeOf(volumeId)).toMatchObject({ state: 'AVAILABLE', task: null, attachedTo: null });
    expect((await instanceOf(rt, instanceId)).task).toBeNull();
    await retried(attach);
    expect(await volumeOf(volumeId)).toMatchObject({ state: 'IN_USE', attachedTo: instanceId, task: null });
    expect((await instanceOf(rt, instanceId)).task).toBeNull();
    expect(await vmVolumes(instanceId)).toEqual([volumeId]);
    await succeeded(commands.detachVolume(rt, caller, { instanceId, volumeId }));

    // Snapshot: the failed one leaves its snapshot ERROR; the retry fills that same snapshot.
    const snap = await failing('snapshotVolume', () => commands.snapshotVolume(rt, caller, { volumeId, name: 'retried-snap' }));
    expect((await volumeOf(volumeId)).snapshots).toEqual([expect.objectContaining({ name: 'retried-snap', state: 'ERROR' })]);
    await retried(snap);
    expect((await volumeOf(volumeId)).snapshots).toEqual([expect.objectContaining({ name: 'retried-snap', state: 'AVAILABLE' })]);

    // A succeeded operation is not retried.
    expect(await refusal(commands.retryOperation(rt, caller, { id: snap }))).toMatchObject({ code: 'CONFLICT' });
  });

  it('refusals change nothing: another project gets NOT_FOUND, a reader FORBIDDEN, a volume of another project CONFLICT', async () => {
    const volumeId = await newVolume('private');
    const before = await rt.store.readStream(volumeStream(volumeId));
    const stranger: Caller = { tokenId: 'stranger', projectId: randomUUID(), role: 'MEMBER' };
    const reader: Caller = { ...caller, role: 'READER', tokenId: 'reader' };
    expect(await refusal(commands.deleteVolume(rt, stranger, { id: volumeId }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await refusal(commands.snapshotVolume(rt, stranger, { volumeId, name: 'x' }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await refusal(commands.deleteVolume(rt, reader, { id: volumeId }))).toMatchObject({ code: 'FORBIDDEN' });
    const theirs = { ...stranger, role: 'ADMIN' as const };
    const otherVolume = (await commands.createVolume(rt, theirs, { name: 'theirs', sizeGb: 1 })).volume.id;
    const mine = await boot('vol-mine');
    expect(await refusal(commands.attachVolume(rt, stranger, { instanceId: mine, volumeId: otherVolume }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await refusal(commands.attachVolume(rt, caller, { instanceId: mine, volumeId: otherVolume }))).toMatchObject({ code: 'CONFLICT' });
    expect(await rt.store.readStream(volumeStream(volumeId))).toHaveLength(before.length);
    const ops = await rt.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM events WHERE stream_id LIKE 'operation-%' AND data->>'resourceId' = $1`, [volumeId]);
    expect(ops[0]!.n).toBe('1');
  });
});
