import { createHash, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { vmNameOf } from '../activities/instanceRecords.js';
import type { Caller } from '../domain/identity.js';
import type { Operation } from '../domain/operation.js';
import type { HostAgentClient } from '../hostagent/client.js';
import * as commands from '../schema/commands/index.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { bootCount, buildTestGuest, consoleText, killQemusUnder, lastHeartbeat, waitBoots, waitFor, waitHeartbeat, type ConsoleSource, type TestGuest } from './support/guest.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { uploadImage } from './support/images.js';
import { adminCaller, instanceOf, lifecycleRuntime, settled } from './support/lifecycleStack.js';

/** The sector the test guest reads its boot disk's marker from (guest.ts: DISK_MARK_SECTOR, 768 MiB). */
const DISK_MARK_OFFSET = 1572864 * 512;

/**
 * A guest booted from an uploaded qcow2 image on real QEMU (TCG) moves to a qemu host that has never
 * seen the image. The image carries a marker at a sector the guest reads at boot: found there after the
 * move, read through the target's disk chain, it proves the moved disk is an overlay on the target's
 * own cached copy of the base. Neither agent has a kernel to fall back on, so a twin made without the
 * image's boot source is refused.
 */
describe.sequential('a guest booted from an uploaded image moves between qemu hosts with its base image (TCG)', () => {
  const ADMIN = `admin-${randomUUID()}`;
  let guest: TestGuest;
  let rt: Runtime;
  let worker: RunningWorker;
  let api: { url: string; close(): Promise<void> };
  let caller: Caller;
  let work: string;
  let marker: string;
  let image: { id: string; checksum: string; sizeBytes: number };
  let instanceId: string;
  let vmName: string;
  const agents: { name: string; agent: AgentProcess; id: string; client: HostAgentClient }[] = [];

  beforeAll(async () => {
    guest = buildTestGuest();
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'mobility_images_qemu_e');
    rt = stack.rt;
    rt.config.adminToken = ADMIN;
    worker = await startWorker(rt);
    api = await startApi(rt, { port: 0 });
    caller = adminCaller();

    // The base image: the test guest's boot disk as a standalone qcow2 of 1 GiB with a marker in the
    // sector the guest reads at boot (past the FAT), so the guest finds it there (HOLDS) without writing it.
    work = mkdtempSync(join(tmpdir(), 'stratus-mobility-images-qemu-'));
    const base = join(work, 'marked-base.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', guest.diskImagePath, base]);
    execFileSync('qemu-img', ['resize', '-q', '-f', 'qcow2', base, '1G']);
    marker = `STRATUS-MARK-base${randomUUID().slice(0, 8)}`;
    const sector = Buffer.alloc(512);
    sector.write(marker);
    writeFileSync(join(work, 'marker.bin'), sector);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -q -s ${join(work, 'marker.bin')} ${DISK_MARK_OFFSET} 512`, base]);

    image = await uploadImage(rt, caller, api, ADMIN, base, 'marked-base');

    const driverOptions = { accel: 'tcg', capacity: '4,4096,50', stopTimeoutMs: 20_000 };
    const addHost = async (name: string) => {
      const agent = await startAgentProcess({ driver: 'qemu', driverOptions, authorizedKeys: [stack.key.publicKey] });
      const { host } = await commands.registerHost(rt, caller, { name, address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
      agents.push({ name, agent, id: host.id, client: agent.client({ privateKey: stack.key.privateKey }) });
    };
    // The instance boots while qemu-a is the only host, so qemu-b has never seen the image.
    await addHost('qemu-a');
    const { flavor } = await commands.createFlavor(rt, caller, { name: 'q1.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 });
    const boot = await commands.bootInstance(rt, caller, { name: 'img-roamer', flavorId: flavor.id, imageId: image.id });
    const booted = await succeeded(boot.operation.id);
    expect(booted.steps.map((s) => s.name)).toContain('fetchImage');
    instanceId = boot.instance!.id;
    vmName = vmNameOf(await instanceOf(rt, instanceId));
    await addHost('qemu-b');
  }, 600_000);

  afterAll(async () => {
    for (const a of agents) a.client.close();
    await api?.close();
    await worker?.shutdown();
    await Promise.allSettled(agents.map((a) => a.agent.stop()));
    killQemusUnder(...agents.map((a) => a.agent.stateDir));
    for (const a of agents) rmSync(a.agent.stateDir, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
    await rt?.close();
  });

  async function succeeded(operationId: string): Promise<Operation> {
    const done = await settled(rt, operationId);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    return done;
  }
  const host = (name: string) => agents.find((a) => a.name === name)!;
  const on = (name: string): ConsoleSource => ({ consoleLog: (vm, opts) => host(name).client.call('consoleLog', { name: vm, lines: opts.lines }) });
  const diskOf = (name: string) => join(host(name).agent.stateDir, 'vms', vmName, 'disk.qcow2');
  const cachePathOn = (name: string) => join(host(name).agent.stateDir, 'image-cache', image.checksum);
  /** The overlay's base as its header names it (-U: QEMU may hold the disk open). */
  const backingOf = (disk: string) =>
    (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', '-f', 'qcow2', disk], { encoding: 'utf8' })) as { 'backing-filename'?: string })['backing-filename'];
  /** The boot disk's marker as the guest last reported it on this host's console. */
  const diskMarkerOn = (name: string) =>
    waitFor(`${vmName} to report its boot disk's marker on ${name}`, 180_000, async () =>
      [...(await consoleText(on(name), vmName)).matchAll(/STRATUS-DISK vda (WROTE|HOLDS) (STRATUS-MARK-\w+)/g)].at(-1)?.slice(1, 3),
    );

  it('the guest booted on the image reads the marker from its base', async () => {
    await waitBoots(on('qemu-a'), vmName, 1, 240_000);
    expect(await diskMarkerOn('qemu-a')).toEqual(['HOLDS', marker]);
    expect(backingOf(diskOf('qemu-a'))).toBe(cachePathOn('qemu-a'));
  }, 300_000);

  it('it live-migrates to a host that lacks the image: the image is fetched there first, the disk is an overlay on the target\'s copy and still reads the marker', async () => {
    const b = host('qemu-b');
    expect(existsSync(cachePathOn('qemu-b'))).toBe(false);
    const last = await waitHeartbeat(on('qemu-a'), vmName, 0);
    const { operation } = await commands.migrateInstance(rt, caller, { id: instanceId, targetHostId: b.id });
    const done = await succeeded(operation.id);
    expect(done.steps.map((s) => s.name)).toEqual([
      'claimTarget', 'plugAttachments', 'fetchImage', 'migrateReceive', 'migrateSend', 'switchHost', 'releaseSourceClaim', 'recordMigrated',
    ]);
    expect(done.steps.find((s) => s.name === 'fetchImage')!.progress).toEqual({ percent: 100, message: `sent ${image.sizeBytes} bytes to the host` });
    expect(await instanceOf(rt, instanceId)).toMatchObject({ state: 'RUNNING', task: null, hostId: b.id });

    // The target's cache holds the whole image now, and the mirrored overlay sits on it.
    expect(createHash('sha256').update(readFileSync(cachePathOn('qemu-b'))).digest('hex')).toBe(image.checksum);
    expect(backingOf(diskOf('qemu-b'))).toBe(cachePathOn('qemu-b'));
    // The same boot, continued on the target.
    const first = await waitHeartbeat(on('qemu-b'), vmName, last);
    expect(first).toBeGreaterThan(last);
    expect(bootCount(await consoleText(on('qemu-b'), vmName))).toBe(0);

    // Booted again on the target, the guest finds its boot files and the marker through the target's chain.
    await succeeded((await commands.rebootInstance(rt, caller, { id: instanceId, hard: true })).operation.id);
    await waitBoots(on('qemu-b'), vmName, 1, 240_000);
    expect(await diskMarkerOn('qemu-b')).toEqual(['HOLDS', marker]);
    expect(lastHeartbeat(await consoleText(on('qemu-b'), vmName))).toBeGreaterThan(0);

    // And the marker's sector is not in the overlay: what the guest read came from the base.
    await succeeded((await commands.stopInstance(rt, caller, { id: instanceId })).operation.id);
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'qcow2', diskOf('qemu-b')], { encoding: 'utf8' })) as {
      start: number; length: number; depth: number; data: boolean;
    }[];
    expect(map.find((m) => m.start <= DISK_MARK_OFFSET && DISK_MARK_OFFSET < m.start + m.length)).toMatchObject({ depth: 1, data: true });
  }, 600_000);

  it('it migrates cold back: the copied overlay is rebased onto the source\'s copy, and boots there', async () => {
    const a = host('qemu-a');
    const { operation } = await commands.migrateInstance(rt, caller, { id: instanceId, targetHostId: a.id });
    const done = await succeeded(operation.id);
    expect(done.steps.map((s) => s.name)).toEqual([
      'claimTarget', 'plugAttachments', 'fetchImage', 'defineOnTarget', 'copyDisk', 'removeFromSource', 'switchHost', 'releaseSourceClaim', 'recordMigrated',
    ]);
    expect(done.steps.find((s) => s.name === 'fetchImage')!.progress).toEqual({ percent: 100, message: 'the host has the image already' });
    expect(existsSync(diskOf('qemu-b'))).toBe(false);
    // The disk that arrived named qemu-b's cache as its base; it names qemu-a's now.
    expect(backingOf(diskOf('qemu-a'))).toBe(cachePathOn('qemu-a'));

    await succeeded((await commands.startInstance(rt, caller, { id: instanceId })).operation.id);
    await waitBoots(on('qemu-a'), vmName, 1, 240_000);
    expect(await diskMarkerOn('qemu-a')).toEqual(['HOLDS', marker]);
  }, 600_000);
});
