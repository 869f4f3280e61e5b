import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { vmNameOf } from '../activities/instanceRecords.js';
import { flavorIdFor } from '../domain/catalog.js';
import type { Caller } from '../domain/identity.js';
import type { HostAgentClient } from '../hostagent/client.js';
import type { VmInfo } from '../hostagent/driver.js';
import { isQemuAlive } from '../hostagent/drivers/qemu/vmProcess.js';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import {
  bootCount, buildTestGuest, consoleText, guestSize, killQemusUnder, lastBlockLine, lastHeartbeat, waitBoots, waitFor, waitHeartbeat, type ConsoleSource, type TestGuest,
} from './support/guest.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { adminCaller, instanceOf, lifecycleRuntime, settled } from './support/lifecycleStack.js';

/**
 * Mobility of real QEMU guests (TCG) through the whole controller: commands, Temporal workflows, two
 * qemu host agents over SSH, the event store and the projections' read model.
 */
describe.sequential('QEMU guests move between two qemu hosts through the controller (TCG)', () => {
  let guest: TestGuest;
  let rt: Runtime;
  let worker: RunningWorker;
  let runner: ProjectionRunner;
  let caller: Caller;
  let privateKey: string;
  /** The storage pool both hosts share (the same path on each), as volumes need. */
  let pool: string;
  const agents: { agent: AgentProcess; id: string; client: HostAgentClient }[] = [];

  beforeAll(async () => {
    guest = buildTestGuest();
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'migration_qemu_e');
    rt = stack.rt;
    privateKey = stack.key.privateKey;
    worker = await startWorker(rt);
    runner = await startProjections(rt);
    caller = adminCaller();
    pool = mkdtempSync(join(tmpdir(), 'stratus-migration-pool-'));
    const driverOptions = {
      accel: 'tcg', capacity: '4,6144,100', stopTimeoutMs: 20_000, storagePool: pool,
      bootKernel: guest.kernelPath, bootInitrd: guest.initrdPath, bootCmdline: guest.cmdline,
    };
    for (const name of ['qemu-a', 'qemu-b']) {
      const agent = await startAgentProcess({ driver: 'qemu', driverOptions, authorizedKeys: [stack.key.publicKey] });
      const { host } = await commands.registerHost(rt, caller, { name, address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
      agents.push({ agent, id: host.id, client: agent.client({ privateKey }) });
    }
    for (const [name, vcpus, memoryMb, diskGb] of [['m1.tiny', 1, 512, 1], ['m1.small', 1, 2048, 20]] as const) {
      await commands.createFlavor(rt, caller, { name, vcpus, memoryMb, diskGb });
    }
  });
  afterAll(async () => {
    for (const a of agents) a.client.close();
    await runner?.stop();
    await worker?.shutdown();
    await Promise.allSettled(agents.map((a) => a.agent.stop()));
    killQemusUnder(...agents.map((a) => a.agent.stateDir));
    for (const a of agents) rmSync(a.agent.stateDir, { recursive: true, force: true });
    if (pool) rmSync(pool, { recursive: true, force: true });
    await rt?.close();
  });

  const on = (hostId: string): ConsoleSource & { getVm(name: string): Promise<VmInfo> } => {
    const client = agents.find((a) => a.id === hostId)!.client;
    return {
      consoleLog: (name: string, opts: { lines: number }) => client.call('consoleLog', { name, lines: opts.lines }),
      getVm: (name: string) => client.call('getVm', { name }),
    };
  };
  const readModel = async (instanceId: string) => {
    await waitForProjections(rt, undefined, { names: ['instances', 'hosts'], timeoutMs: 15_000 });
    const [row] = await rt.db.query<{ host_id: string }>('SELECT host_id::text AS host_id FROM rm_instances WHERE id = $1', [instanceId]);
    const hosts = await rt.db.query<{ id: string; vcpus: number; memory_mb: number }>(
      'SELECT id::text AS id, allocated_vcpus AS vcpus, allocated_memory_mb AS memory_mb FROM rm_hosts',
    );
    return { hostId: row?.host_id, allocated: Object.fromEntries(hosts.map((h) => [h.id, { vcpus: h.vcpus, memoryMb: h.memory_mb }])) };
  };

  let instanceId: string;
  let vmName: string;
  /** What the guest saw at its first boot, on m1.tiny (its console stays behind on the source host). */
  let tinySize: { memKb: number; cpus: number };

  it('a running guest live-migrates: its heartbeat counts on at the target, the source QEMU is gone, host and allocations move in the read model', async () => {
    const { operation, instance } = await commands.bootInstance(rt, caller, { name: 'roamer', flavorId: flavorIdFor('m1.tiny'), imageId: (await commands.registerImage(rt, caller, { name: 'kernel', format: 'raw', sizeBytes: 1 })).image.id });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    instanceId = instance!.id;
    const booted = await instanceOf(rt, instanceId);
    vmName = vmNameOf(booted);
    const source = booted.hostId!;
    const target = agents.find((a) => a.id !== source)!.id;
    await waitBoots(on(source), vmName, 1, 90_000);
    tinySize = await waitFor('STRATUS-SIZE', 30_000, async () => guestSize(await consoleText(on(source), vmName)));
    const sourcePid = (await on(source).getVm(vmName)).pid;
    expect(isQemuAlive(sourcePid)).toBe(true);
    const before = await readModel(instanceId);
    expect(before.hostId).toBe(source);
    expect(before.allocated[source]).toEqual({ vcpus: 1, memoryMb: 512 });
    expect(before.allocated[target]).toEqual({ vcpus: 0, memoryMb: 0 });

    const last = await waitHeartbeat(on(source), vmName, 0);
    const migration = await commands.migrateInstance(rt, caller, { id: instanceId, targetHostId: target });
    const done = await settled(rt, migration.operation.id);
    expect(done.status).toBe('SUCCEEDED');
    const send = done.steps.find((s) => s.name === 'migrateSend')!;
    expect(send).toMatchObject({ status: 'SUCCEEDED', progress: { percent: 100, message: expect.stringMatching(/^transferred \d+ bytes, downtime \d+ ms/) } });
    console.log(`live migration through the controller: ${send.progress!.message}, operation ${Date.parse(done.finishedAt!) - Date.parse(done.createdAt)} ms`);

    expect(isQemuAlive(sourcePid)).toBe(false);
    await expect(on(source).getVm(vmName)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const first = await waitHeartbeat(on(target), vmName, 0);
    expect(first).toBeGreaterThanOrEqual(last);
    // The same boot, continued: the target's console never saw the guest start.
    expect(bootCount(await consoleText(on(target), vmName))).toBe(0);
    expect(lastHeartbeat(await consoleText(on(target), vmName))).toBeGreaterThan(last);

    expect(await instanceOf(rt, instanceId)).toMatchObject({ state: 'RUNNING', task: null, hostId: target });
    const after = await readModel(instanceId);
    expect(after.hostId).toBe(target);
    expect(after.allocated[source]).toEqual({ vcpus: 0, memoryMb: 0 });
    expect(after.allocated[target]).toEqual({ vcpus: 1, memoryMb: 512 });
  });

  it('resizing the running guest from m1.tiny to m1.small: it comes back RUNNING and sees the new memory', async () => {
    const before = await instanceOf(rt, instanceId);
    const host = before.hostId!;
    const boots = bootCount(await consoleText(on(host), vmName));
    const sizeBefore = tinySize;
    const { operation } = await commands.resizeInstance(rt, caller, { id: instanceId, flavorId: flavorIdFor('m1.small') });
    const done = await settled(rt, operation.id);
    expect(done.status).toBe('SUCCEEDED');
    const after = await instanceOf(rt, instanceId);
    expect(after).toMatchObject({ state: 'RUNNING', task: null, flavor: { id: flavorIdFor('m1.small'), memoryMb: 2048 } });
    await waitBoots(on(after.hostId!), vmName, after.hostId === host ? boots + 1 : 1, 90_000);
    const sizeAfter = await waitFor('STRATUS-SIZE after the resize', 30_000, async () => {
      const text = await consoleText(on(after.hostId!), vmName);
      const last = text.slice(text.lastIndexOf('STRATUS-BOOT-OK'));
      return guestSize(last);
    });
    console.log(`guest MemTotal: ${sizeBefore.memKb} kB on m1.tiny, ${sizeAfter.memKb} kB on m1.small`);
    // The kernel keeps some memory for itself, so MemTotal is a little below the flavor's size.
    expect(sizeBefore.memKb).toBeLessThanOrEqual(512 * 1024);
    expect(sizeAfter.memKb).toBeGreaterThan(1536 * 1024);
    expect(sizeAfter.memKb).toBeLessThanOrEqual(2048 * 1024);
    const readBack = await readModel(instanceId);
    expect(readBack.allocated[after.hostId!]).toEqual({ vcpus: 1, memoryMb: 2048 });
  });

  it('a stopped guest migrates cold: its disk, with what was written on it, arrives on the target, and it boots there', async () => {
    const stop = await commands.stopInstance(rt, caller, { id: instanceId });
    expect((await settled(rt, stop.operation.id)).status).toBe('SUCCEEDED');
    const before = await instanceOf(rt, instanceId);
    const source = before.hostId!;
    const target = agents.find((a) => a.id !== source)!;
    const sourceDisk = join(agents.find((a) => a.id === source)!.agent.stateDir, 'vms', vmName, 'disk.qcow2');
    // Something only this disk holds: a megabyte of 0x5a at offset 0, written while QEMU is not running.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', sourceDisk]);

    const { operation } = await commands.migrateInstance(rt, caller, { id: instanceId });
    const done = await settled(rt, operation.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => s.name)).toContain('copyDisk');
    expect(await instanceOf(rt, instanceId)).toMatchObject({ state: 'STOPPED', task: null, hostId: target.id });
    expect(existsSync(sourceDisk)).toBe(false);
    const targetDisk = join(target.agent.stateDir, 'vms', vmName, 'disk.qcow2');
    expect(execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x5a 0 1M', targetDisk]).toString()).toMatch(/read 1048576\/1048576 bytes/);

    const start = await commands.startInstance(rt, caller, { id: instanceId });
    expect((await settled(rt, start.operation.id)).status).toBe('SUCCEEDED');
    await waitBoots(on(target.id), vmName, 1, 90_000);
  });

  it('a running guest with an attached volume live-migrates: its disk comes along, the volume is the same block device on the target and still holds its marker', async () => {
    const stop = await commands.stopInstance(rt, caller, { id: instanceId });
    expect((await settled(rt, stop.operation.id)).status).toBe('SUCCEEDED');
    const source = (await instanceOf(rt, instanceId)).hostId!;
    const target = agents.find((a) => a.id !== source)!;
    const sourceDisk = join(agents.find((a) => a.id === source)!.agent.stateDir, 'vms', vmName, 'disk.qcow2');
    // Only this disk holds it: 1 MB of 0xa5 at 4 MB, which the disk mirror must carry to the target.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xa5 4M 1M', sourceDisk]);
    const made = await commands.createVolume(rt, caller, { name: 'moving-data', sizeGb: 1 });
    expect((await settled(rt, made.operation.id)).status).toBe('SUCCEEDED');
    const attach = await commands.attachVolume(rt, caller, { instanceId, volumeId: made.volume.id });
    expect((await settled(rt, attach.operation.id)).status).toBe('SUCCEEDED');
    const boots = bootCount(await consoleText(on(source), vmName));
    const start = await commands.startInstance(rt, caller, { id: instanceId });
    expect((await settled(rt, start.operation.id)).status).toBe('SUCCEEDED');
    await waitBoots(on(source), vmName, boots + 1, 90_000);
    const marker = await waitFor('the guest to mark its volume', 60_000, async () =>
      /STRATUS-VOLUME vdb WROTE (STRATUS-MARK-\w+)/.exec(await consoleText(on(source), vmName))?.[1],
    );
    const device = (await on(source).getVm(vmName)).volumes.find((v) => v.volumeId === made.volume.id)!.device;
    const last = await waitHeartbeat(on(source), vmName, 0);

    const migration = await commands.migrateInstance(rt, caller, { id: instanceId, targetHostId: target.id });
    const done = await settled(rt, migration.operation.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(await instanceOf(rt, instanceId)).toMatchObject({ state: 'RUNNING', task: null, hostId: target.id });
    await expect(on(source).getVm(vmName)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await on(target.id).getVm(vmName)).volumes).toEqual([expect.objectContaining({ volumeId: made.volume.id, device })]);
    await waitForProjections(rt, undefined, { names: ['volumes'], timeoutMs: 15_000 });
    const [row] = await rt.db.query<{ state: string; attached_to: string; device: string }>(
      "SELECT state, attached_to::text AS attached_to, doc->>'device' AS device FROM rm_volumes WHERE id = $1",
      [made.volume.id],
    );
    expect(row).toEqual({ state: 'IN_USE', attached_to: instanceId, device });

    // The same boot, continued on the target, reading the marker from the volume (page cache dropped).
    // The guest prints a round's READS line before that round's heartbeat, so both are waited for.
    const text = await waitFor('the moved guest to read its volume and beat on', 60_000, async () => {
      const t = await consoleText(on(target.id), vmName);
      return /STRATUS-VOLUME vdb READS /.test(t) && lastHeartbeat(t) > last ? t : undefined;
    });
    expect(bootCount(text)).toBe(0);
    expect(lastHeartbeat(text)).toBeGreaterThan(last);
    expect([...text.matchAll(/STRATUS-VOLUME vdb READS (\S*)/g)].map((m) => m[1])).toEqual(expect.arrayContaining([marker]));
    expect([...text.matchAll(/STRATUS-VOLUME vdb READS (\S*)/g)].every((m) => m[1] === marker)).toBe(true);
    expect(lastBlockLine(text)).toBeUndefined();

    const halt = await commands.stopInstance(rt, caller, { id: instanceId });
    expect((await settled(rt, halt.operation.id)).status).toBe('SUCCEEDED');
    const targetDisk = join(target.agent.stateDir, 'vms', vmName, 'disk.qcow2');
    expect(execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0xa5 4M 1M', targetDisk]).toString()).toMatch(/read 1048576\/1048576 bytes/);
  });
});
