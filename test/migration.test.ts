import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { vmNameOf } from '../activities/instanceRecords.js';
import { StratusError } from '../domain/errors.js';
import type { Caller } from '../domain/identity.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { readVolume } from '../activities/volumeRecords.js';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import type { AgentProcess } from './support/hostagent.js';
import { readFolded } from '../activities/events.js';
import { instanceStream, operationStream } from '../domain/events.js';
import { operationDecider } from '../domain/operation.js';
import { waitFor } from './support/guest.js';
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

describe('migration between sim hosts, on real Temporal, PostgreSQL and sim agents over SSH', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let runner: ProjectionRunner;
  let caller: Caller;
  let privateKey: string;
  let flavorId: string;
  let imageId: string;
  const hosts: { agent: AgentProcess; id: string }[] = [];

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'migration_e');
    rt = stack.rt;
    privateKey = stack.key.privateKey;
    worker = await startWorker(rt);
    runner = await startProjections(rt);
    caller = adminCaller();
    for (const name of ['mig-1', 'mig-2', 'mig-3']) {
      const { agent, host } = await simHost(rt, caller, stack.key.publicKey, name, { vcpus: 14, memoryMb: 14 * 1024, diskGb: 100 });
      hosts.push({ agent, id: host.id });
    }
    flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
  });
  afterAll(async () => {
    await runner?.stop();
    await worker?.shutdown();
    await Promise.all(hosts.map((h) => h.agent.stop()));
    await rt?.close();
  });

  const agentOf = (hostId: string) => hosts.find((h) => h.id === hostId)!.agent;
  const vmsOn = async (hostId: string) => {
    const client = agentOf(hostId).client({ privateKey });
    try {
      return (await client.call('listVms', {})).vms;
    } finally {
      client.close();
    }
  };
  const boot = async (name: string) => {
    const { operation, instance } = await commands.bootInstance(rt, caller, { name, flavorId, imageId });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    return instanceOf(rt, instance!.id);
  };

  it('a live migration moves the VM, the instance and the claim to the target, with every step recorded', async () => {
    const before = await boot('live-1');
    const target = hosts.find((h) => h.id !== before.hostId)!.id;
    const { operation } = await commands.migrateInstance(rt, caller, { id: before.id, targetHostId: target });
    expect(operation).toMatchObject({ kind: 'MIGRATE', status: 'PENDING' });
    const done = await settled(rt, operation.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => [s.name, s.status])).toEqual([
      ['claimTarget', 'SUCCEEDED'],
      ['plugAttachments', 'SUCCEEDED'],
      ['migrateReceive', 'SUCCEEDED'],
      ['migrateSend', 'SUCCEEDED'],
      ['switchHost', 'SUCCEEDED'],
      ['releaseSourceClaim', 'SUCCEEDED'],
      ['recordMigrated', 'SUCCEEDED'],
    ]);
    expect(done.steps.find((s) => s.name === 'migrateSend')!.progress).toMatchObject({ percent: 100, message: expect.stringMatching(/^transferred \d+ bytes/) });

    const after = await instanceOf(rt, before.id);
    expect(after).toMatchObject({ state: 'RUNNING', task: null, hostId: target });
    expect(Object.keys((await hostOf(rt, before.hostId!)).claims)).not.toContain(before.id);
    expect((await hostOf(rt, target)).claims[before.id]).toMatchObject({ operationId: operation.id });
    expect((await vmsOn(before.hostId!)).map((v) => v.name)).not.toContain(vmNameOf(before));
    expect((await vmsOn(target)).find((v) => v.name === vmNameOf(before))).toMatchObject({ state: 'running' });
    const migrated = (await rt.store.readStream(instanceStream(before.id))).filter((e) => e.type === 'InstanceMigrated');
    expect(migrated.map((e) => e.data)).toEqual([expect.objectContaining({ fromHostId: before.hostId, hostId: target })]);
  });

  it('without a target the scheduler picks another host; a STOPPED instance moves cold and stays STOPPED', async () => {
    const before = await boot('cold-1');
    const stop = await commands.stopInstance(rt, caller, { id: before.id });
    expect((await settled(rt, stop.operation.id)).status).toBe('SUCCEEDED');
    const { operation } = await commands.migrateInstance(rt, caller, { id: before.id });
    const done = await settled(rt, operation.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => s.name)).toEqual(['claimTarget', 'plugAttachments', 'defineOnTarget', 'copyDisk', 'removeFromSource', 'switchHost', 'releaseSourceClaim', 'recordMigrated']);
    const after = await instanceOf(rt, before.id);
    expect(after.hostId).not.toBe(before.hostId);
    expect(after).toMatchObject({ state: 'STOPPED', task: null });
    expect((await vmsOn(after.hostId!)).find((v) => v.name === vmNameOf(before))).toMatchObject({ state: 'stopped' });
    expect((await vmsOn(before.hostId!)).map((v) => v.name)).not.toContain(vmNameOf(before));
  });

  it('attached volumes come along, live and cold: the target VM has them on the same devices, the volume stays IN_USE by the instance', async () => {
    const before = await boot('with-volumes');
    const volumes = [];
    for (const name of ['data-a', 'data-b']) {
      const { operation, volume } = await commands.createVolume(rt, caller, { name, sizeGb: 2 });
      expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
      const attach = await commands.attachVolume(rt, caller, { instanceId: before.id, volumeId: volume.id });
      expect((await settled(rt, attach.operation.id)).status).toBe('SUCCEEDED');
      volumes.push(volume.id);
    }
    // Detaching the first leaves the second on vdc: a device the target must keep, not the first free one.
    const detach = await commands.detachVolume(rt, caller, { instanceId: before.id, volumeId: volumes[0]! });
    expect((await settled(rt, detach.operation.id)).status).toBe('SUCCEEDED');
    const kept = volumes[1]!;
    const expected = [{ volumeId: kept, device: 'vdc' }];
    expect((await vmsOn(before.hostId!)).find((v) => v.name === vmNameOf(before))?.volumes).toEqual(expected);
    const attachmentIs = async (device: string) => {
      expect(await readVolume(rt, kept)).toMatchObject({ state: 'IN_USE', attachedTo: before.id, device, task: null });
      await waitForProjections(rt, undefined, { names: ['volumes'], timeoutMs: 15_000 });
      const [row] = await rt.db.query<{ state: string; attached_to: string; device: string }>(
        "SELECT state, attached_to::text AS attached_to, doc->>'device' AS device FROM rm_volumes WHERE id = $1",
        [kept],
      );
      expect(row).toEqual({ state: 'IN_USE', attached_to: before.id, device });
    };
    await attachmentIs('vdc');

    const liveTarget = hosts.find((h) => h.id !== before.hostId)!.id;
    const live = await settled(rt, (await commands.migrateInstance(rt, caller, { id: before.id, targetHostId: liveTarget })).operation.id);
    expect(live.status).toBe('SUCCEEDED');
    expect((await vmsOn(liveTarget)).find((v) => v.name === vmNameOf(before))).toMatchObject({ state: 'running', volumes: expected });
    expect((await vmsOn(before.hostId!)).map((v) => v.name)).not.toContain(vmNameOf(before));
    await attachmentIs('vdc');

    const stop = await commands.stopInstance(rt, caller, { id: before.id });
    expect((await settled(rt, stop.operation.id)).status).toBe('SUCCEEDED');
    const coldTarget = hosts.find((h) => h.id !== liveTarget)!.id;
    const cold = await settled(rt, (await commands.migrateInstance(rt, caller, { id: before.id, targetHostId: coldTarget })).operation.id);
    expect(cold.status).toBe('SUCCEEDED');
    expect((await vmsOn(coldTarget)).find((v) => v.name === vmNameOf(before))).toMatchObject({ state: 'stopped', volumes: expected });
    expect((await vmsOn(liveTarget)).map((v) => v.name)).not.toContain(vmNameOf(before));
    await attachmentIs('vdc');

    // The attachment works where the instance now lives: it starts with the volume, and detaching reaches the new host.
    const start = await commands.startInstance(rt, caller, { id: before.id });
    expect((await settled(rt, start.operation.id)).status).toBe('SUCCEEDED');
    const off = await commands.detachVolume(rt, caller, { instanceId: before.id, volumeId: kept });
    expect((await settled(rt, off.operation.id)).status).toBe('SUCCEEDED');
    expect((await vmsOn(coldTarget)).find((v) => v.name === vmNameOf(before))).toMatchObject({ state: 'running', volumes: [] });
    expect(await readVolume(rt, kept)).toMatchObject({ state: 'AVAILABLE', attachedTo: null });
  });

  for (const [what, method] of [
    ['a target that refuses to receive', 'migrateReceive'],
    ['a transfer that fails half way', 'migrateSend'],
  ] as const) {
    it(`${what} leaves the instance RUNNING on the source, the target's claim released and no VM on the target`, async () => {
      const before = await boot(`fails-${method}`);
      const target = hosts.find((h) => h.id !== before.hostId)!;
      const faulty = method === 'migrateReceive' ? target.agent : agentOf(before.hostId!);
      // The transfer runs (reporting its progress) for a while before it fails: half way, not at the start.
      const halfWay = method === 'migrateSend' ? { latencyMs: 1000, latencyMethods: [method] } : {};
      await setFaults(faulty, { failMethods: [method], failNamePattern: '^fails-', ...halfWay });
      try {
        const { operation } = await commands.migrateInstance(rt, caller, { id: before.id, targetHostId: target.id });
        const done = await settled(rt, operation.id);
        expect(done).toMatchObject({ status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } });
        expect(done.steps.find((s) => s.name === method)).toMatchObject({ status: 'FAILED' });
        if (method === 'migrateSend') {
          expect(done.steps.find((s) => s.name === method)!.progress).toMatchObject({ percent: expect.any(Number), message: expect.stringMatching(/^migrateSend: step \d+ of 10/) });
          expect(done.steps.find((s) => s.name === method)!.progress!.percent).toBeGreaterThan(0);
        }
        expect(done.steps.find((s) => s.name === 'abandonTarget')).toMatchObject({ status: 'SUCCEEDED' });
      } finally {
        await setFaults(faulty, {});
      }
      const after = await instanceOf(rt, before.id);
      expect(after).toMatchObject({ state: 'RUNNING', task: null, hostId: before.hostId, errorReason: null });
      expect((await hostOf(rt, target.id)).claims[before.id]).toBeUndefined();
      expect((await hostOf(rt, before.hostId!)).claims[before.id]).toBeDefined();
      expect((await vmsOn(target.id)).map((v) => v.name)).not.toContain(vmNameOf(before));
      expect((await vmsOn(before.hostId!)).find((v) => v.name === vmNameOf(before))).toMatchObject({ state: 'running' });
    });
  }

  it('bad targets are refused before anything is written: its own host BAD_USER_INPUT, an unknown host NOT_FOUND, a member FORBIDDEN', async () => {
    const instance = await boot('refused-1');
    const version = (await rt.store.readStream(instanceStream(instance.id))).length;
    expect(await refusal(commands.migrateInstance(rt, caller, { id: instance.id, targetHostId: instance.hostId! }))).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(await refusal(commands.migrateInstance(rt, caller, { id: instance.id, targetHostId: '00000000-0000-4000-8000-000000000000' }))).toMatchObject({
      code: 'NOT_FOUND',
    });
    const member: Caller = { tokenId: 'member', projectId: instance.projectId, role: 'MEMBER' };
    expect(await refusal(commands.migrateInstance(rt, member, { id: instance.id }))).toMatchObject({ code: 'FORBIDDEN' });
    expect((await rt.store.readStream(instanceStream(instance.id))).length).toBe(version);
  });

  it('30 concurrent migrations between 3 sim hosts never overcommit a host: claims always match where the VMs are', async () => {
    const crowd = await Promise.all(Array.from({ length: 30 }, (_, i) => boot(`crowd-${i}`)));
    const migrations = await Promise.all(crowd.map((i) => commands.migrateInstance(rt, caller, { id: i.id })));
    const operations = await Promise.all(migrations.map((m) => settled(rt, m.operation.id)));
    // Room is short on purpose (42 vCPU for 37 instances, each holding two hosts while it moves): some
    // migrations must be refused, and only for want of room.
    for (const op of operations) {
      if (op.status !== 'SUCCEEDED') expect(op).toMatchObject({ status: 'FAILED', error: { code: 'NO_VALID_HOST' } });
    }
    expect(operations.filter((o) => o.status === 'SUCCEEDED').length).toBeGreaterThan(0);
    const instances = await Promise.all(crowd.map((i) => instanceOf(rt, i.id)));
    for (const i of instances) expect(i).toMatchObject({ state: 'RUNNING', task: null });

    const all = await Promise.all(hosts.map(async (h) => ({ host: await hostOf(rt, h.id), vms: await vmsOn(h.id) })));
    const everyInstance = new Map<string, string | null>();
    for (const e of await Promise.all([...new Set(all.flatMap(({ vms }) => vms.map((v) => v.labels.instanceId!)))].map((id) => instanceOf(rt, id)))) {
      everyInstance.set(e.id, e.hostId);
    }
    for (const { host, vms } of all) {
      expect(host.allocated.vcpus).toBeLessThanOrEqual(host.capacity.vcpus);
      const here = [...everyInstance].filter(([, hostId]) => hostId === host.id).map(([id]) => id).sort();
      expect(Object.keys(host.claims).sort()).toEqual(here);
      expect(vms.map((v) => v.labels.instanceId).sort()).toEqual(here);
    }
  });
});

describe.sequential('a migration undone while its target cannot be reached, with host health checks on', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let caller: Caller;
  let privateKey: string;
  let publicKey: string;
  let source: { agent: AgentProcess; id: string };
  let target: { agent: AgentProcess; id: string } | undefined;

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'migration_unreachable_e');
    publicKey = stack.key.publicKey;
    rt = stack.rt;
    rt.config.hostHealth = { intervalMs: 250, missesToDown: 3, evacuate: false };
    privateKey = stack.key.privateKey;
    worker = await startWorker(rt);
    caller = adminCaller();
    const s = await simHost(rt, caller, stack.key.publicKey, 'unreach-source');
    source = { agent: s.agent, id: s.host.id };
  });
  afterAll(async () => {
    await worker?.shutdown();
    await Promise.all([source?.agent.stop(), target?.agent.stop()]);
    await rt?.close();
  });

  const vmsOn = async (agent: AgentProcess) => {
    const client = agent.client({ privateKey });
    try {
      return (await client.call('listVms', {})).vms.map((v) => [v.name, v.state]);
    } finally {
      client.close();
    }
  };
  const hostIs = (id: string, state: 'UP' | 'DOWN') => waitFor(`host ${id} ${state}`, 30_000, async () => ((await hostOf(rt, id)).state === state ? true : undefined));

  it("releases the target's claim all the same, and the twin left on the target is fenced when it answers again", async () => {
    const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
    const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
    const boot = await commands.bootInstance(rt, caller, { name: 'stranded-1', flavorId, imageId });
    expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
    const t = await simHost(rt, caller, publicKey, 'unreach-target');
    target = { agent: t.agent, id: t.host.id };
    const instance = await instanceOf(rt, boot.instance!.id);
    expect(instance.hostId).toBe(source.id);
    const name = vmNameOf(instance);

    // The send is held on the source once the twin waits on the target; the target's agent dies meanwhile.
    await setFaults(source.agent, { holdMethods: 'migrateSend' });
    const { operation } = await commands.migrateInstance(rt, caller, { id: instance.id, targetHostId: target.id });
    await waitFor('the send under way', 30_000, async () =>
      (await readFolded(rt, operationStream(operation.id), operationDecider)).state?.steps.some((x) => x.name === 'migrateSend') ? true : undefined,
    );
    expect(await vmsOn(target.agent)).toEqual([[name, 'paused']]);
    await target.agent.kill();
    await setFaults(source.agent, {});

    const done = await settled(rt, operation.id);
    expect(done).toMatchObject({ status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } });
    expect(done.steps.find((x) => x.name === 'abandonTarget')).toMatchObject({ status: 'SUCCEEDED' });
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', task: null, hostId: source.id });
    expect((await hostOf(rt, target.id)).claims).toEqual({});
    expect(Object.keys((await hostOf(rt, source.id)).claims)).toEqual([instance.id]);
    expect(await vmsOn(source.agent)).toEqual([[name, 'running']]);

    // The twin outlived its agent; the target's health check turns it DOWN, and fences it when it answers.
    await hostIs(target.id, 'DOWN');
    await target.agent.restart();
    await hostIs(target.id, 'UP');
    expect(await vmsOn(target.agent)).toEqual([]);
    expect(await vmsOn(source.agent)).toEqual([[name, 'running']]);
  });
});
