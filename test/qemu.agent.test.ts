import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostAgentClient } from '../hostagent/client.js';
import type { VmSpecInput } from '../hostagent/driver.js';
import type { MethodName, ParamsOf, ResultOf } from '../hostagent/protocol.js';
import { isQemuAlive } from '../hostagent/drivers/qemu/vmProcess.js';
import {
  bootCount, buildTestGuest, consoleText, killQemusUnder, lastHeartbeat, sleep, waitBlock, waitBoots, waitHeartbeat, type TestGuest,
} from './support/guest.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';

/**
 * The qemu driver through real host agent processes and the real SSH client, on real QEMU under TCG
 * (nested KVM hangs on these machines). One VM is reused across the lifecycle steps, in order.
 */

let guest: TestGuest;
let a: AgentProcess;
let b: AgentProcess;
let ca: HostAgentClient;
let cb: HostAgentClient;

const driverOptions = { accel: 'tcg', stopTimeoutMs: 20_000, rebootTimeoutMs: 10_000, capacity: '8,8192,100' };

/** A host as the tests use it: every mutating call gets a fresh idempotency key; progress is collected. */
function host(client: () => HostAgentClient) {
  const call = <M extends MethodName>(method: M, params: ParamsOf<M>, progress: string[] = []): Promise<ResultOf<M>> =>
    client().call(method, params, { idempotencyKey: randomUUID(), timeoutMs: 120_000, onProgress: (p) => void progress.push(p.message) });
  return {
    call,
    consoleLog: (name: string, opts: { lines: number }) => call('consoleLog', { name, lines: opts.lines }),
    getVm: (name: string) => call('getVm', { name }),
  };
}
const hostA = host(() => ca);
const hostB = host(() => cb);

function spec(name: string, extra: Partial<VmSpecInput> = {}): VmSpecInput {
  return {
    name, vcpus: 1, memoryMb: 256, diskGb: 1,
    boot: { kind: 'kernel', kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline: guest.cmdline },
    ...extra,
  };
}

beforeAll(async () => {
  guest = buildTestGuest();
  a = await startAgentProcess({ driver: 'qemu', driverOptions });
  b = await startAgentProcess({ driver: 'qemu', driverOptions });
  ca = a.client();
  cb = b.client();
});

afterAll(async () => {
  ca?.close();
  cb?.close();
  await Promise.allSettled([a?.stop(), b?.stop()]);
  const dirs = [a?.stateDir, b?.stateDir].filter((d): d is string => !!d);
  killQemusUnder(...dirs);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A VM's state, and null where it has no process (a missing and an undefined pid read alike). */
const noProcess = (vm: { state: string; pid?: number | undefined }) => ({ state: vm.state, pid: vm.pid ?? null });

describe.sequential('qemu VMs through real host agents over SSH (TCG)', () => {
  it('hostInfo reports the qemu hypervisor and the configured accelerator', async () => {
    expect(await hostA.call('hostInfo', {})).toMatchObject({ hypervisor: 'qemu', accel: 'tcg' });
  });

  it('a created VM is stopped with no process; started, it boots to the marker on its serial console', async () => {
    expect(noProcess(await hostA.call('createVm', { spec: spec('vm1') }))).toEqual({ state: 'stopped', pid: null });
    const t0 = Date.now();
    const started = await hostA.call('startVm', { name: 'vm1' });
    expect(started.state).toBe('running');
    await waitBoots(hostA, 'vm1', 1);
    console.log(`vm1 boot to marker through the agent: ${Date.now() - t0} ms`);
  });

  it('pause stops the heartbeat and unpause resumes it from where it stopped', async () => {
    await waitHeartbeat(hostA, 'vm1', 1);
    expect((await hostA.call('pauseVm', { name: 'vm1' })).state).toBe('paused');
    const frozen = lastHeartbeat(await consoleText(hostA, 'vm1'));
    await sleep(2500);
    expect(lastHeartbeat(await consoleText(hostA, 'vm1'))).toBe(frozen);
    expect((await hostA.call('unpauseVm', { name: 'vm1' })).state).toBe('running');
    expect(await waitHeartbeat(hostA, 'vm1', frozen)).toBe(frozen + 1);
  });

  it('suspend saves the VM to a file and ends QEMU; resume continues the same boot (the heartbeat counts on)', async () => {
    const boots = bootCount(await consoleText(hostA, 'vm1'));
    expect(noProcess(await hostA.call('suspendVm', { name: 'vm1' }))).toEqual({ state: 'suspended', pid: null });
    const last = lastHeartbeat(await consoleText(hostA, 'vm1'));
    expect((await hostA.call('resumeVm', { name: 'vm1' })).state).toBe('running');
    expect(await waitHeartbeat(hostA, 'vm1', last)).toBeLessThanOrEqual(last + 2);
    expect(bootCount(await consoleText(hostA, 'vm1'))).toBe(boots);
  });

  it('attaching a volume makes a block device appear in the running guest, detaching makes it go', async () => {
    await waitBlock(hostA, 'vm1', 'vda');
    const attached = await hostA.call('attachVolume', { name: 'vm1', volumeId: 'vol-1', sizeGb: 1 });
    expect(attached.volumes.map((v) => v.volumeId)).toEqual(['vol-1']);
    await waitBlock(hostA, 'vm1', 'vda,vdb');
    expect((await hostA.call('detachVolume', { name: 'vm1', volumeId: 'vol-1' })).volumes).toEqual([]);
    await waitBlock(hostA, 'vm1', 'vda');
  });

  it('a soft reboot restarts the guest through ctrl-alt-del and a hard reboot resets it; both boot again', async () => {
    const boots = bootCount(await consoleText(hostA, 'vm1'));
    const progress: string[] = [];
    await hostA.call('rebootVm', { name: 'vm1', hard: false }, progress);
    expect(progress.join()).not.toMatch(/hard reset/);
    await waitBoots(hostA, 'vm1', boots + 1);
    await hostA.call('rebootVm', { name: 'vm1', hard: true });
    await waitBoots(hostA, 'vm1', boots + 2);
  });

  it('stop powers the guest off over ACPI (no quit needed) and start boots it again', async () => {
    const boots = bootCount(await consoleText(hostA, 'vm1'));
    const pid = (await hostA.getVm('vm1')).pid;
    const progress: string[] = [];
    expect(noProcess(await hostA.call('stopVm', { name: 'vm1', force: false }, progress))).toEqual({ state: 'stopped', pid: null });
    expect(isQemuAlive(pid)).toBe(false);
    expect(progress.join()).not.toMatch(/quitting QEMU/);
    expect(await consoleText(hostA, 'vm1')).toContain('STRATUS-POWERDOWN');
    await hostA.call('startVm', { name: 'vm1' });
    await waitBoots(hostA, 'vm1', boots + 1);
  });

  it('restarting the agent leaves running VMs running, and it lists them again', async () => {
    const before = await hostA.getVm('vm1');
    await a.restart();
    ca.close();
    ca = a.client();
    const { vms } = await hostA.call('listVms', {});
    expect(vms.map((v) => [v.name, v.state, v.pid])).toEqual([['vm1', 'running', before.pid]]);
    await waitHeartbeat(hostA, 'vm1', lastHeartbeat(await consoleText(hostA, 'vm1')));
  });

  it('a migration that fails leaves the VM running on the source', async () => {
    const before = await hostA.getVm('vm1');
    const nobody = { host: '127.0.0.1', port: 9, diskPort: 9 };
    await expect(hostA.call('migrateSend', { name: 'vm1', target: nobody })).rejects.toMatchObject({ code: 'HYPERVISOR_ERROR' });
    const after = await hostA.getVm('vm1');
    expect([after.state, after.pid]).toEqual(['running', before.pid]);
    await waitHeartbeat(hostA, 'vm1', lastHeartbeat(await consoleText(hostA, 'vm1')));
  });

  it('live migration between two agents keeps the heartbeat counting, ends the source and records the downtime', async () => {
    const sourcePid = (await hostA.getVm('vm1')).pid;
    const target = await hostB.call('migrateReceive', { spec: spec('vm1') });
    const last = lastHeartbeat(await consoleText(hostA, 'vm1'));
    const progress: string[] = [];
    const result = await hostA.call('migrateSend', { name: 'vm1', target }, progress);
    console.log(`migration through agents: downtime ${result.downtimeMs} ms, total ${result.totalMs} ms, ${result.transferredBytes} bytes`);
    expect(result.downtimeMs).toBeGreaterThan(0);
    expect(result.totalMs).toBeGreaterThanOrEqual(result.downtimeMs);
    expect(progress.length).toBeGreaterThan(0);
    expect(isQemuAlive(sourcePid)).toBe(false);
    await expect(hostA.getVm('vm1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await hostB.getVm('vm1')).state).toBe('running');
    const first = await waitHeartbeat(hostB, 'vm1', 0);
    expect(first).toBeGreaterThanOrEqual(last);
    expect(bootCount(await consoleText(hostB, 'vm1'))).toBe(0);
  });

  it('destroy leaves no process, no disk and no directory', async () => {
    const pid = (await hostB.getVm('vm1')).pid;
    expect(await hostB.call('destroyVm', { name: 'vm1' })).toEqual({ destroyed: true });
    expect(isQemuAlive(pid)).toBe(false);
    expect(existsSync(join(b.stateDir, 'vms/vm1'))).toBe(false);
  });

  it('a snapshot of a running VM booted from a disk image is an image that boots', async () => {
    await hostA.call('createVm', { spec: spec('img1', { boot: { kind: 'image', imagePath: guest.diskImagePath } }) });
    await hostA.call('startVm', { name: 'img1' });
    await waitBoots(hostA, 'img1', 1, 90_000);
    const snap = await hostA.call('snapshotVm', { name: 'img1', imageName: 'img1-snap' });
    expect(snap.sizeBytes).toBeGreaterThan(1_000_000);
    await hostA.call('destroyVm', { name: 'img1' });
    await hostA.call('createVm', { spec: spec('from-snap', { boot: { kind: 'image', imagePath: snap.imagePath } }) });
    await hostA.call('startVm', { name: 'from-snap' });
    await waitBoots(hostA, 'from-snap', 1, 90_000);
    await hostA.call('destroyVm', { name: 'from-snap' });
    expect(readdirSync(join(a.stateDir, 'vms'))).toEqual([]);
  });
});
