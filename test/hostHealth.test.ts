import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFolded } from '../activities/events.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import { lastHeartbeatOf } from '../activities/hostHeartbeats.js';
import { readVolume } from '../activities/volumeRecords.js';
import { hostStream, instanceStream, operationStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import type { Instance } from '../domain/instance.js';
import { operationDecider } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { hostHealthWorkflowId, watchHost } from '../schema/commands/hostHealth.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import type { AgentProcess } from './support/hostagent.js';
import { waitFor } from './support/guest.js';
import { adminCaller, hostOf, instanceOf, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

const INTERVAL_MS = 250;
const MISSES = 3;

/** A stack whose health checks run every INTERVAL_MS, with a worker, a tiny flavor and a registered image. */
async function healthStack(name: string, evacuate: boolean) {
  const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), name);
  stack.rt.config.hostHealth = { intervalMs: INTERVAL_MS, missesToDown: MISSES, evacuate };
  const worker = await startWorker(stack.rt);
  const caller = adminCaller();
  const flavorId = (await commands.createFlavor(stack.rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
  const imageId = (await commands.registerImage(stack.rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
  return { ...stack, worker, caller, flavorId, imageId };
}

/** The VMs an agent lists, asked over SSH with the controller's key. */
async function vmsListedBy(agent: AgentProcess, privateKey: string) {
  const client = agent.client({ privateKey });
  try {
    return (await client.call('listVms', {})).vms;
  } finally {
    client.close();
  }
}

describe.sequential('host health: heartbeats, DOWN after missed checks, evacuation and fencing, on real Temporal, PostgreSQL and sim agents', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let caller: Caller;
  let privateKey: string;
  let flavorId: string;
  let imageId: string;
  let victim: { agent: AgentProcess; id: string };
  let spare: { agent: AgentProcess; id: string };
  let instances: Instance[];
  let volumeId: string;

  beforeAll(async () => {
    const stack = await healthStack('host_health_e', true);
    ({ rt, worker, caller, flavorId, imageId } = stack);
    privateKey = stack.key.privateKey;
    const v = await simHost(rt, caller, stack.key.publicKey, 'victim');
    victim = { agent: v.agent, id: v.host.id };
    instances = [];
    for (const name of ['hb-1', 'hb-2', 'hb-3']) {
      const { operation, instance } = await commands.bootInstance(rt, caller, { name, flavorId, imageId });
      expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
      instances.push(await instanceOf(rt, instance!.id));
    }
    // hb-1 holds a volume of the shared pool: its rebuild on another host must have it too.
    const made = await commands.createVolume(rt, caller, { name: 'hb-data', sizeGb: 1 });
    expect((await settled(rt, made.operation.id)).status).toBe('SUCCEEDED');
    volumeId = made.volume.id;
    const attach = await commands.attachVolume(rt, caller, { instanceId: instances[0]!.id, volumeId });
    expect((await settled(rt, attach.operation.id)).status).toBe('SUCCEEDED');
    const stop = await commands.stopInstance(rt, caller, { id: instances[2]!.id });
    expect((await settled(rt, stop.operation.id)).status).toBe('SUCCEEDED');
    const s = await simHost(rt, caller, stack.key.publicKey, 'spare');
    spare = { agent: s.agent, id: s.host.id };
  });
  afterAll(async () => {
    await worker?.shutdown();
    await Promise.all([victim?.agent.stop(), spare?.agent.stop()]);
    await rt?.close();
  });

  const vmsOn = (agent: AgentProcess) => vmsListedBy(agent, privateKey);

  it('every answer is a heartbeat kept on the host, and none of them is an event in the log', async () => {
    const first = await waitFor('a heartbeat', 20_000, () => lastHeartbeatOf(rt, victim.id).then((t) => t ?? undefined));
    const later = await waitFor('a later heartbeat', 20_000, async () => {
      const t = await lastHeartbeatOf(rt, victim.id);
      return t && t > first ? t : undefined;
    });
    expect(Date.parse(later)).toBeGreaterThan(Date.parse(first));
    const types = new Set((await rt.store.readStream(hostStream(victim.id))).map((e) => e.type));
    expect([...types].sort()).toEqual(['HostCapacityClaimed', 'HostRegistered']);
  });

  it('a killed agent turns its host DOWN after the configured misses; its instances are evacuated and RUNNING (or STOPPED) elsewhere', async () => {
    await victim.agent.kill();
    await waitFor('the victim DOWN', 30_000, async () => ((await hostOf(rt, victim.id)).state === 'DOWN' ? true : undefined));
    const down = (await rt.store.readStream(hostStream(victim.id))).filter((e) => e.type === 'HostStateChanged');
    expect(down.map((e) => e.data)).toEqual([expect.objectContaining({ state: 'DOWN', reason: 'agent-unreachable' })]);

    const moved = await waitFor('every instance evacuated', 60_000, async () => {
      const now = await Promise.all(instances.map((i) => instanceOf(rt, i.id)));
      return now.every((i) => i.hostId === spare.id && i.task === null) ? now : undefined;
    });
    expect(moved.map((i) => i.state)).toEqual(['RUNNING', 'RUNNING', 'STOPPED']);
    for (const i of moved) expect(i.errorReason).toBeNull();
    const onSpare = await vmsOn(spare.agent);
    expect(onSpare.map((v) => [v.name, v.state]).sort()).toEqual(
      instances.map((i, n) => [vmNameOf(i), n === 2 ? 'stopped' : 'running']).sort(),
    );
    expect((await hostOf(rt, victim.id)).claims).toEqual({});
    expect(Object.keys((await hostOf(rt, spare.id)).claims).sort()).toEqual(instances.map((i) => i.id).sort());
    // The rebuilt VM has the volume on the device it had, and the volume is still the instance's.
    expect(onSpare.find((v) => v.name === vmNameOf(instances[0]!))?.volumes).toEqual([{ volumeId, device: 'vdb' }]);
    expect(await readVolume(rt, volumeId)).toMatchObject({ state: 'IN_USE', attachedTo: instances[0]!.id, device: 'vdb', task: null });
  });

  it('when the agent answers again its stale VMs are destroyed before the host turns UP: no instance runs twice', async () => {
    await victim.agent.restart();
    await waitFor('the victim UP', 30_000, async () => ((await hostOf(rt, victim.id)).state === 'UP' ? true : undefined));
    expect(await vmsOn(victim.agent)).toEqual([]);
    expect((await vmsOn(spare.agent)).map((v) => v.name).sort()).toEqual(instances.map(vmNameOf).sort());
    const changes = (await rt.store.readStream(hostStream(victim.id))).filter((e) => e.type === 'HostStateChanged').map((e) => e.data);
    expect(changes).toEqual([
      expect.objectContaining({ state: 'DOWN', reason: 'agent-unreachable' }),
      expect.objectContaining({ state: 'UP', reason: 'agent-answers' }),
    ]);
  });
});

describe.sequential('host health without evacuation: a DOWN host keeps its instances, noted with the reason', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let privateKey: string;
  let host: { agent: AgentProcess; id: string };
  let instance: Instance;

  beforeAll(async () => {
    const stack = await healthStack('host_health_keep_e', false);
    ({ rt, worker } = stack);
    const { caller, flavorId, imageId } = stack;
    privateKey = stack.key.privateKey;
    const h = await simHost(rt, caller, stack.key.publicKey, 'lonely');
    host = { agent: h.agent, id: h.host.id };
    const { operation, instance: booted } = await commands.bootInstance(rt, caller, { name: 'kept-1', flavorId, imageId });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    instance = await instanceOf(rt, booted!.id);
  });
  afterAll(async () => {
    await worker?.shutdown();
    await host?.agent.stop();
    await rt?.close();
  });

  it('the instance stays RUNNING on its host with a HOST_DOWN reason, and loses it (keeping its VM) when the host answers again', async () => {
    await host.agent.kill();
    const noted = await waitFor('the instance noted', 30_000, async () => {
      const i = await instanceOf(rt, instance.id);
      return i.errorReason ? i : undefined;
    });
    expect((await hostOf(rt, host.id)).state).toBe('DOWN');
    expect(noted).toMatchObject({ state: 'RUNNING', task: null, hostId: host.id });
    expect(noted.errorReason).toMatch(/^HOST_DOWN: agent-unreachable: no answer to 3 checks/);
    const evacuations = (await rt.store.readAll({ streamPrefix: 'operation-', limit: 1000 })).filter(
      (e) => e.type === 'OperationRequested' && e.data.kind === 'EVACUATE_HOST',
    );
    expect(evacuations).toEqual([]);

    await host.agent.restart();
    await waitFor('the host UP', 30_000, async () => ((await hostOf(rt, host.id)).state === 'UP' ? true : undefined));
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', hostId: host.id, errorReason: null });
    expect((await vmsListedBy(host.agent, privateKey)).map((v) => [v.name, v.state])).toEqual([[vmNameOf(instance), 'running']]);
  });

  it('a health check started afresh on a host it had turned DOWN turns it UP at the first answer', async () => {
    await host.agent.kill();
    await waitFor('the host DOWN', 30_000, async () => ((await hostOf(rt, host.id)).state === 'DOWN' ? true : undefined));
    // The check is lost (terminated here; a Temporal that lost its workflows is the same) while the host
    // is DOWN, and the host comes back before a new one starts: that one has counted no misses at all.
    await rt.temporal.workflow.getHandle(hostHealthWorkflowId(host.id)).terminate('the check is lost');
    await host.agent.restart();
    await watchHost(rt, host.id);
    await waitFor('the host UP', 30_000, async () => ((await hostOf(rt, host.id)).state === 'UP' ? true : undefined));
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', hostId: host.id, errorReason: null });
    const changes = (await rt.store.readStream(hostStream(host.id))).filter((e) => e.type === 'HostStateChanged').map((e) => e.data);
    expect(changes.slice(-2)).toEqual([
      expect.objectContaining({ state: 'DOWN', reason: 'agent-unreachable' }),
      expect.objectContaining({ state: 'UP', reason: 'agent-answers' }),
    ]);
    expect((await vmsListedBy(host.agent, privateKey)).map((v) => [v.name, v.state])).toEqual([[vmNameOf(instance), 'running']]);
  });
});

describe.sequential('an evacuation and its host answering again race on the instance: it never runs on two hosts', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let privateKey: string;
  let victim: { agent: AgentProcess; id: string };
  let spare: { agent: AgentProcess; id: string };
  let instance: Instance;
  const seen: string[] = [];

  beforeAll(async () => {
    const stack = await healthStack('host_health_race_e', true);
    ({ rt, worker } = stack);
    const { caller, flavorId, imageId } = stack;
    privateKey = stack.key.privateKey;
    const v = await simHost(rt, caller, stack.key.publicKey, 'race-victim');
    victim = { agent: v.agent, id: v.host.id };
    const { operation, instance: booted } = await commands.bootInstance(rt, caller, { name: 'race-1', flavorId, imageId });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    instance = await instanceOf(rt, booted!.id);
    const s = await simHost(rt, caller, stack.key.publicKey, 'race-spare');
    spare = { agent: s.agent, id: s.host.id };
  });
  afterAll(async () => {
    await worker?.shutdown();
    await Promise.all([victim?.agent.stop(), spare?.agent.stop()]);
    await rt?.close();
  });

  const vmsOn = async (agent: AgentProcess) => (await vmsListedBy(agent, privateKey)).map((v) => [v.name, v.state]);
  /** The next evacuation of the instance, once its step `step` has begun (and not before). */
  const evacuationAt = (step: string) =>
    waitFor(`an evacuation at ${step}`, 30_000, async () => {
      const started = (await rt.store.readStream(instanceStream(instance.id)))
        .filter((e) => e.type === 'InstanceTaskStarted' && (e.data as { kind: string }).kind === 'EVACUATE')
        .map((e) => (e.data as { operationId: string }).operationId)
        .filter((id) => !seen.includes(id));
      if (!started[0]) return undefined;
      const op = (await readFolded(rt, operationStream(started[0]), operationDecider)).state;
      if (!op?.steps.some((x) => x.name === step)) return undefined;
      seen.push(started[0]);
      return started[0];
    });
  const hostIs = (id: string, state: 'UP' | 'DOWN') => waitFor(`host ${id} ${state}`, 30_000, async () => ((await hostOf(rt, id)).state === state ? true : undefined));

  it('a host that answers before the evacuation moved its instance keeps it: the evacuation undoes its rebuild, one VM runs', async () => {
    // The rebuild is held on the spare once the evacuation has found the victim DOWN and claimed room there.
    await setFaults(spare.agent, { holdMethods: 'createVm' });
    await victim.agent.kill();
    const operationId = await evacuationAt('createVm');
    await victim.agent.restart();
    await hostIs(victim.id, 'UP');
    expect(await vmsOn(victim.agent)).toEqual([[vmNameOf(instance), 'running']]);

    await setFaults(spare.agent, {});
    const done = await settled(rt, operationId);
    expect(done.status).toBe('FAILED');
    expect(done.error).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/answers again/) });
    expect(done.steps.map((x) => [x.name, x.status])).toEqual([
      ['claimTarget', 'SUCCEEDED'],
      ['plugAttachments', 'SUCCEEDED'],
      ['createVm', 'SUCCEEDED'],
      ['recordEvacuated', 'FAILED'],
      ['dropRebuild', 'SUCCEEDED'],
    ]);
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', hostId: victim.id, task: null, errorReason: null });
    expect(await vmsOn(victim.agent)).toEqual([[vmNameOf(instance), 'running']]);
    expect(await vmsOn(spare.agent)).toEqual([]);
    expect(Object.keys((await hostOf(rt, victim.id)).claims)).toEqual([instance.id]);
    expect((await hostOf(rt, spare.id)).claims).toEqual({});
  });

  it('a host that answers after the evacuation moved its instance has its VM destroyed before it turns UP: the rebuilt VM is the only one', async () => {
    // Held once the instance lives on the spare, before its VM there starts.
    await setFaults(spare.agent, { holdMethods: 'startVm' });
    await victim.agent.kill();
    const operationId = await evacuationAt('startVm');
    expect(await instanceOf(rt, instance.id)).toMatchObject({ hostId: spare.id, task: 'EVACUATE' });
    await victim.agent.restart();
    await hostIs(victim.id, 'UP');
    expect(await vmsOn(victim.agent)).toEqual([]);

    await setFaults(spare.agent, {});
    const done = await settled(rt, operationId);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((x) => [x.name, x.status])).toEqual([
      ['claimTarget', 'SUCCEEDED'],
      ['plugAttachments', 'SUCCEEDED'],
      ['createVm', 'SUCCEEDED'],
      ['recordEvacuated', 'SUCCEEDED'],
      ['releaseSourceClaim', 'SUCCEEDED'],
      ['startVm', 'SUCCEEDED'],
      ['finishEvacuation', 'SUCCEEDED'],
    ]);
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', hostId: spare.id, task: null, errorReason: null });
    expect(await vmsOn(spare.agent)).toEqual([[vmNameOf(instance), 'running']]);
    expect(await vmsOn(victim.agent)).toEqual([]);
    expect((await hostOf(rt, victim.id)).claims).toEqual({});
    expect(Object.keys((await hostOf(rt, spare.id)).claims)).toEqual([instance.id]);
  });
});
