import { createHash, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { childOperationId } from '../activities/drainSteps.js';
import { hostHealthSteps } from '../activities/hostHealth.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import { operationStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import type { Instance } from '../domain/instance.js';
import { workflowIdOf, type Operation } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { startHostOperation } from '../schema/commands/hostOperations.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import type { AgentProcess } from './support/hostagent.js';
import { uploadImage } from './support/images.js';
import { adminCaller, instanceOf, lifecycleRuntime, settled, simHost } from './support/lifecycleStack.js';

/**
 * Moves of an instance booted from an uploaded image, on real Temporal, PostgreSQL and sim agents over
 * SSH: every move (cold migration, resize onto another host, evacuation) first fetches the image to a
 * target that has never seen it, and the VM made there is an overlay on the target's own cached copy.
 * The sim agent refuses an image boot whose image is not on its host, as the qemu driver does.
 */
describe.sequential('moving an instance booted from an uploaded image takes its image along (sim hosts)', () => {
  const ADMIN = `admin-${randomUUID()}`;
  let rt: Runtime;
  let worker: RunningWorker;
  let api: { url: string; close(): Promise<void> };
  let caller: Caller;
  let privateKey: string;
  let publicKey: string;
  let work: string;
  let image: { id: string; checksum: string; sizeBytes: number };
  let tiny: string;
  let big: string;
  let instance: Instance;
  const hosts = new Map<string, { agent: AgentProcess; id: string }>();

  const addHost = async (name: string, memoryMb: number) => {
    const { agent, host } = await simHost(rt, caller, publicKey, name, { vcpus: 4, memoryMb, diskGb: 100 });
    hosts.set(name, { agent, id: host.id });
    return host.id;
  };
  const hostNamed = (name: string) => hosts.get(name)!;
  const call = async <T>(name: string, fn: (c: ReturnType<AgentProcess['client']>) => Promise<T>) => {
    const client = hostNamed(name).agent.client({ privateKey });
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  };
  /** What the host's image cache holds of the image: its path and whether the bytes hash to its checksum. */
  const cachedOn = async (name: string) => {
    const cached = await call(name, (c) => c.call('hasImage', { checksum: image.checksum }));
    const whole = cached.present && createHash('sha256').update(readFileSync(cached.path)).digest('hex') === image.checksum;
    return { present: cached.present, whole, path: cached.path };
  };
  const consoleOn = (name: string, of = instance) => call(name, (c) => c.call('consoleLog', { name: vmNameOf(of), lines: 200 })).then((r) => r.text);
  const succeeded = async (operationId: string): Promise<Operation> => {
    const done = await settled(rt, operationId);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    for (const s of done.steps) expect(s.status, s.name).toBe('SUCCEEDED');
    return done;
  };
  /** The fetch's progress as recorded on its step, in order. */
  const fetchProgress = async (operationId: string) =>
    (await rt.store.readStream(operationStream(operationId)))
      .filter((e) => e.type === 'OperationStepProgressed' && (e.data as { name: string }).name === 'fetchImage')
      .map((e) => (e.data as { percent?: number }).percent);
  /** The patches a run's workflow recorded (Temporal's core_patch markers). */
  const patchesOf = async (operationId: string) => {
    const history = await rt.temporal.workflow.getHandle(workflowIdOf(operationId)).fetchHistory();
    return (history.events ?? []).flatMap((e) => {
      const a = e.markerRecordedEventAttributes;
      const data = a?.markerName === 'core_patch' ? a.details?.['patch-data']?.payloads?.[0]?.data : undefined;
      return data ? [(JSON.parse(Buffer.from(data).toString()) as { id: string }).id] : [];
    });
  };
  const expectSentTo = async (name: string, operation: Operation) => {
    expect(operation.steps.find((s) => s.name === 'fetchImage')!.progress).toEqual({ percent: 100, message: `sent ${image.sizeBytes} bytes to the host` });
    const percents = await fetchProgress(operation.id);
    // Reported along the way (the image is several chunks), not only at the end.
    expect(percents.some((p) => p !== undefined && p < 100)).toBe(true);
    expect(percents).toEqual([...percents].sort((a, b) => a! - b!));
    const cached = await cachedOn(name);
    expect(cached).toMatchObject({ present: true, whole: true });
    expect(cached.path.startsWith(hostNamed(name).agent.stateDir)).toBe(true);
    expect(await consoleOn(name)).toContain(`disk vda: an overlay on ${cached.path}`);
  };

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'mobility_images_e');
    rt = stack.rt;
    rt.config.adminToken = ADMIN;
    privateKey = stack.key.privateKey;
    publicKey = stack.key.publicKey;
    worker = await startWorker(rt);
    api = await startApi(rt, { port: 0 });
    caller = adminCaller();
    tiny = (await commands.createFlavor(rt, caller, { name: 'i1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
    big = (await commands.createFlavor(rt, caller, { name: 'i1.big', vcpus: 1, memoryMb: 3072, diskGb: 2 })).flavor.id;

    // A qcow2 of three upload chunks' worth of data, so the fetch reports progress along the way.
    work = mkdtempSync(join(tmpdir(), 'stratus-mobility-images-'));
    const file = join(work, 'base.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -q -P 0x5a 0 1536K', file]);
    image = await uploadImage(rt, caller, api, ADMIN, file, 'moving-base');
    expect(image.sizeBytes).toBeGreaterThan(2 * 512 * 1024);

    // Booted while its host is the only one: the others have never seen the image.
    await addHost('img-a', 2048);
    const boot = await commands.bootInstance(rt, caller, { name: 'img-1', flavorId: tiny, imageId: image.id });
    expect((await succeeded(boot.operation.id)).steps.map((s) => s.name)).toContain('fetchImage');
    instance = await instanceOf(rt, boot.instance!.id);
    await addHost('img-b', 2048);
    await addHost('img-c', 8192);
  });
  afterAll(async () => {
    await api?.close();
    await worker?.shutdown();
    await Promise.all([...hosts.values()].map((h) => h.agent.stop()));
    await rt?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('a cold migration fetches the image to a target that lacks it before the VM is defined there, and the VM is an overlay on the target\'s copy', async () => {
    expect(await cachedOn('img-b')).toMatchObject({ present: false });
    await succeeded((await commands.stopInstance(rt, caller, { id: instance.id })).operation.id);
    const { operation } = await commands.migrateInstance(rt, caller, { id: instance.id, targetHostId: hostNamed('img-b').id });
    const done = await succeeded(operation.id);
    expect(done.steps.map((s) => s.name)).toEqual([
      'claimTarget', 'plugAttachments', 'fetchImage', 'defineOnTarget', 'copyDisk', 'removeFromSource', 'switchHost', 'releaseSourceClaim', 'recordMigrated',
    ]);
    await expectSentTo('img-b', done);
    expect(await patchesOf(operation.id)).toContain('moves-fetch-image');
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'STOPPED', task: null, hostId: hostNamed('img-b').id });
  });

  it('a live migration to a host that holds the image already costs one look there, and its twin is an overlay on that host\'s copy', async () => {
    await succeeded((await commands.startInstance(rt, caller, { id: instance.id })).operation.id);
    const { operation } = await commands.migrateInstance(rt, caller, { id: instance.id, targetHostId: hostNamed('img-a').id });
    const done = await succeeded(operation.id);
    expect(done.steps.map((s) => s.name)).toEqual([
      'claimTarget', 'plugAttachments', 'fetchImage', 'migrateReceive', 'migrateSend', 'switchHost', 'releaseSourceClaim', 'recordMigrated',
    ]);
    expect(done.steps.find((s) => s.name === 'fetchImage')!.progress).toEqual({ percent: 100, message: 'the host has the image already' });
    expect(await fetchProgress(operation.id)).toEqual([100]);
    const cached = await cachedOn('img-a');
    expect(cached).toMatchObject({ present: true, whole: true });
    expect(await consoleOn('img-a')).toContain(`disk vda: an overlay on ${cached.path}`);
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', task: null, hostId: hostNamed('img-a').id });
  });

  it('a resize onto another host fetches the image there before the VM is defined there', async () => {
    // Neither img-a nor img-b (2 GB each) has room for i1.big (3 GB): only img-c does.
    expect(await cachedOn('img-c')).toMatchObject({ present: false });
    const { operation } = await commands.resizeInstance(rt, caller, { id: instance.id, flavorId: big });
    const done = await succeeded(operation.id);
    expect(done.steps.map((s) => s.name)).toEqual([
      'claimResize', 'stopVm', 'plugAttachments', 'fetchImage', 'defineOnTarget', 'copyDisk', 'removeFromSource', 'recordResized', 'releaseSourceClaim', 'startVm', 'finishResize',
    ]);
    await expectSentTo('img-c', done);
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', task: null, hostId: hostNamed('img-c').id, flavor: { id: big } });
  });

  it('an evacuation rebuilds the VM on a target that lacks the image from the copy it fetched there first', async () => {
    const spare = await addHost('img-d', 8192);
    expect(await cachedOn('img-d')).toMatchObject({ present: false });
    // img-c is lost as the health check loses a host (DOWN, its instances noted), called directly so that
    // no check's timing is involved; img-d is the only other host with room for i1.big.
    await hostHealthSteps(rt).hostLost(hostNamed('img-c').id, 3);
    const evacuation = await startHostOperation(rt, caller, hostNamed('img-c').id, 'EVACUATE_HOST');
    await succeeded(evacuation.id);
    const child = await succeeded(childOperationId(evacuation.id, instance.id));
    expect(child.steps.map((s) => s.name)).toEqual([
      'claimTarget', 'plugAttachments', 'fetchImage', 'createVm', 'recordEvacuated', 'releaseSourceClaim', 'startVm', 'finishEvacuation',
    ]);
    await expectSentTo('img-d', child);
    expect(await instanceOf(rt, instance.id)).toMatchObject({ state: 'RUNNING', task: null, hostId: spare });
    expect((await call('img-d', (c) => c.call('getVm', { name: vmNameOf(instance) }))).state).toBe('running');
  });

  it('an instance of a registered image (no bytes) moves as it always did: no fetch, no patch marker, no boot source', async () => {
    const registered = (await commands.registerImage(rt, caller, { name: 'registered', format: 'qcow2', sizeBytes: 1 })).image.id;
    const boot = await commands.bootInstance(rt, caller, { name: 'plain-1', flavorId: tiny, imageId: registered });
    await succeeded(boot.operation.id);
    const plain = await instanceOf(rt, boot.instance!.id);
    const { operation } = await commands.migrateInstance(rt, caller, { id: plain.id });
    const done = await succeeded(operation.id);
    expect(done.steps.map((s) => s.name)).toEqual(['claimTarget', 'plugAttachments', 'migrateReceive', 'migrateSend', 'switchHost', 'releaseSourceClaim', 'recordMigrated']);
    expect(await patchesOf(operation.id)).not.toContain('moves-fetch-image');
    const moved = await instanceOf(rt, plain.id);
    const target = [...hosts.keys()].find((name) => hostNamed(name).id === moved.hostId)!;
    expect(moved.hostId).not.toBe(plain.hostId);
    expect(await consoleOn(target, plain)).not.toContain('overlay');
  });
});
