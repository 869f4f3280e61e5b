import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageStream, volumeStream } from '../domain/events.js';
import { imageFold } from '../domain/image.js';
import { volumeDecider } from '../domain/volume.js';
import { readFolded } from '../activities/events.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import type { HostAgentClient } from '../hostagent/client.js';
import { startProjections, type ProjectionRunner } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { startApi } from '../server/api.js';
import { imageStore } from '../server/imageStore.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { buildTestGuest, consoleText, killQemusUnder, waitBlock, waitBoots, waitFor, type TestGuest } from './support/guest.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { instanceOf, settled } from './support/lifecycleStack.js';
import { testRuntime } from './support/projectionFixtures.js';

/**
 * The whole stack on real QEMU under TCG: an image uploaded through the API boots on a host that has
 * never seen it (the boot sends it over the agent's SSH connection first), and a volume attached through
 * the API to the running guest shows up on its console; the marker the guest writes to it is read back
 * by a second instance the volume is attached to after a detach. A snapshot of the first instance,
 * taken through the API while it runs, is an image whose boot disk holds the marker its guest wrote.
 */
const ADMIN = `admin-${randomUUID()}`;
const caller = bootstrapAdminCaller;

let guest: TestGuest;
let rt: Runtime;
let runner: ProjectionRunner;
let worker: RunningWorker;
let agent: AgentProcess;
let client: HostAgentClient;
let api: { url: string; close(): Promise<void> };

beforeAll(async () => {
  guest = buildTestGuest();
  rt = await testRuntime('storage_qemu', { adminToken: ADMIN });
  runner = await startProjections(rt);
  worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
  const controllerKey = readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8');
  agent = await startAgentProcess({ driver: 'qemu', driverOptions: { accel: 'tcg', capacity: '4,4096,50', detachTimeoutMs: 30_000 }, authorizedKeys: [controllerKey] });
  client = agent.client({ privateKey: readFileSync(rt.config.sshKeyPath, 'utf8') });
  api = await startApi(rt, { port: 0 });
  await commands.registerHost(rt, caller, { name: 'qemu-1', address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
}, 300_000);

afterAll(async () => {
  client?.close();
  await api?.close();
  await worker?.shutdown();
  await runner?.stop();
  await agent?.stop();
  if (agent) killQemusUnder(agent.stateDir);
  await rt?.close();
});

const consoleOf = { consoleLog: (name: string, opts: { lines: number }) => client.call('consoleLog', { name, lines: opts.lines }) };
const succeeded = async (p: Promise<{ operation: { id: string } }>) => {
  const done = await settled(rt, (await p).operation.id);
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  return done;
};
const diskMarkerSeen = (name: string, verb: 'WROTE' | 'HOLDS') =>
  waitFor(`${name} to report ${verb} on its boot disk`, 120_000, async () =>
    [...(await consoleText(consoleOf, name)).matchAll(new RegExp(`STRATUS-DISK vda ${verb} (STRATUS-MARK-\\w+)`, 'g'))].at(-1)?.[1],
  );
const markerSeen = (name: string, verb: 'WROTE' | 'HOLDS', device: string) =>
  waitFor(`${name} to report ${verb} on ${device}`, 60_000, async () =>
    [...(await consoleText(consoleOf, name)).matchAll(new RegExp(`STRATUS-VOLUME ${device} ${verb} (STRATUS-MARK-\\w+)`, 'g'))].at(-1)?.[1],
  );

describe.sequential('storage through the whole stack on QEMU (TCG)', () => {
  let vmA: string;
  let vmB: string;
  let instanceA: string;
  let instanceB: string;

  it('an uploaded qcow2 boots through the API on a host that fetches it first', async () => {
    const { image, uploadUrl } = await commands.createImage(rt, caller, { name: 'test-guest', format: 'qcow2', visibility: 'PUBLIC' });
    const res = await fetch(api.url.replace(/\/graphql$/, '') + uploadUrl, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN}` },
      body: new Uint8Array(readFileSync(guest.diskImagePath)),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const { flavor } = await commands.createFlavor(rt, caller, { name: 'q1.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 });
    const boot = (name: string) => commands.bootInstance(rt, caller, { name, flavorId: flavor.id, imageId: image.id });
    const a = await boot('guest-a');
    const bootedA = await succeeded(Promise.resolve(a));
    expect(bootedA.steps.map((s) => s.name)).toEqual(['schedule', 'allocateAddress', 'plugPort', 'fetchImage', 'createVm', 'startVm', 'recordRunning']);
    const b = await boot('guest-b');
    await succeeded(Promise.resolve(b));
    instanceA = a.instance!.id;
    instanceB = b.instance!.id;
    vmA = vmNameOf(await instanceOf(rt, instanceA));
    vmB = vmNameOf(await instanceOf(rt, instanceB));
    await waitBoots(consoleOf, vmA, 1, 180_000);
    await waitBoots(consoleOf, vmB, 1, 180_000);
  }, 600_000);

  it('a 1 GB volume attached through the API appears in the running guest, and its marker follows it to a second instance', async () => {
    const created = await commands.createVolume(rt, caller, { name: 'shared-data', sizeGb: 1 });
    await succeeded(Promise.resolve(created));
    const volume = created.volume;
    await waitBlock(consoleOf, vmA, 'vda');

    await succeeded(commands.attachVolume(rt, caller, { instanceId: instanceA, volumeId: volume.id }));
    await waitBlock(consoleOf, vmA, 'vda,vdb');
    const marker = await markerSeen(vmA, 'WROTE', 'vdb');

    await succeeded(commands.detachVolume(rt, caller, { instanceId: instanceA, volumeId: volume.id }));
    await waitBlock(consoleOf, vmA, 'vda');
    await succeeded(commands.attachVolume(rt, caller, { instanceId: instanceB, volumeId: volume.id }));
    await waitBlock(consoleOf, vmB, 'vda,vdb');
    expect(await markerSeen(vmB, 'HOLDS', 'vdb')).toBe(marker);
    expect((await readFolded(rt, volumeStream(volume.id), volumeDecider)).state).toMatchObject({ state: 'IN_USE', attachedTo: instanceB });
  }, 600_000);

  it('a snapshot of the running instance is an image that boots into a guest whose disk holds what the original wrote', async () => {
    // The marker the first guest wrote on its own disk at boot (a sector past the image's filesystem).
    const marker = await diskMarkerSeen(vmA, 'WROTE');
    const snap = await commands.snapshotInstance(rt, { ...caller }, { id: instanceA, imageName: 'guest-a-snapshot' });
    const done = await succeeded(Promise.resolve(snap));
    expect(done.steps.map((s) => s.name)).toEqual(['snapshotVm', 'uploadSnapshot', 'removeHostSnapshot', 'recordSnapshot']);
    const image = (await readFolded(rt, imageStream(snap.image!.id), imageFold)).state!;
    expect(image).toMatchObject({ status: 'ACTIVE', visibility: 'PRIVATE', sourceInstanceId: instanceA, format: 'qcow2' });
    expect(existsSync(imageStore(rt).blobPath(image.checksum!))).toBe(true);
    expect(readdirSync(join(agent.stateDir, 'images'))).toEqual([]);
    expect((await instanceOf(rt, instanceA)).state).toBe('RUNNING');

    const { flavor } = await commands.createFlavor(rt, caller, { name: 'q1.snap', vcpus: 1, memoryMb: 256, diskGb: 1 });
    const c = await commands.bootInstance(rt, caller, { name: 'guest-c', flavorId: flavor.id, imageId: image.id });
    const bootedC = await succeeded(Promise.resolve(c));
    expect(bootedC.steps.map((s) => s.name)).toContain('fetchImage');
    const vmC = vmNameOf(await instanceOf(rt, c.instance!.id));
    await waitBoots(consoleOf, vmC, 1, 180_000);
    expect(await diskMarkerSeen(vmC, 'HOLDS')).toBe(marker);
  }, 600_000);
});
