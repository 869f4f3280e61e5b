import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallContext, VmSpecInput } from '../hostagent/driver.js';
import { VmSpec } from '../hostagent/driver.js';
import { QemuDriver } from '../hostagent/drivers/qemu/index.js';
import { isQemuAlive } from '../hostagent/drivers/qemu/vmProcess.js';
import { probeKvm } from '../hostagent/drivers/qemu/hostProbe.js';
import { buildTestGuest, consoleText, killQemusUnder, lastHeartbeat, sleep, waitBoots, waitFor, waitHeartbeat, type TestGuest } from './support/guest.js';

/**
 * The qemu driver called directly, on real QEMU under TCG (nested KVM hangs on these machines): what the
 * agent tests (qemu.agent.test.ts) cannot easily reach, such as a VM killed behind the driver's back.
 * The full lifecycle, migration, volumes and snapshots run through real agents there.
 */

const ctx = (): CallContext & { messages: string[] } => {
  const messages: string[] = [];
  return { signal: new AbortController().signal, progress: (p) => void messages.push(p.message), messages };
};

let guest: TestGuest;
const dirs: string[] = [];
let driver: QemuDriver;

function spec(name: string, extra: Partial<VmSpecInput> = {}) {
  return VmSpec.parse({
    name, vcpus: 1, memoryMb: 256, diskGb: 1,
    boot: { kind: 'kernel', kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline: guest.cmdline },
    ...extra,
  });
}

async function newDriver(stateDir: string) {
  const d = new QemuDriver(stateDir, { accel: 'tcg', stopTimeoutMs: '20000', rebootTimeoutMs: '10000', capacity: '8,8192,100' });
  await d.init();
  return d;
}

beforeAll(async () => {
  guest = buildTestGuest();
  dirs.push(mkdtempSync(join(tmpdir(), 'stratus-qemu-a-')), mkdtempSync(join(tmpdir(), 'stratus-qemu-b-')));
  driver = await newDriver(dirs[0]!);
});

afterAll(async () => {
  await driver?.close();
  killQemusUnder(...dirs);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A VM's state, and null where it has no process (a missing and an undefined pid read alike). */
const noProcess = (vm: { state: string; pid?: number | undefined }) => ({ state: vm.state, pid: vm.pid ?? null });

describe.sequential('qemu driver on real QEMU (TCG)', () => {
  it('the KVM probe catches a guest that makes no progress and falls back to TCG within its timeout', async () => {
    const t0 = Date.now();
    const probe = await probeKvm({ timeoutMs: 3000 });
    console.log(`KVM probe: ${probe.accel} (${probe.reason}) in ${Date.now() - t0} ms`);
    expect(Date.now() - t0).toBeLessThan(6000);
    // On these machines nested KVM hangs; where it works the probe must have seen the kernel speak.
    if (probe.accel === 'kvm') expect(probe.reason).toMatch(/kernel printed/);
    else expect(probe.reason).toMatch(/no progress|failed|no \/dev\/kvm|no kernel/);
    // Here `-cpu host` aborts at once; the default CPU model is the one that hangs, and the probe must end that too.
    const t1 = Date.now();
    const hang = await probeKvm({ timeoutMs: 3000, cpu: 'qemu64' });
    console.log(`KVM probe (qemu64): ${hang.accel} (${hang.reason}) in ${Date.now() - t1} ms`);
    expect(Date.now() - t1).toBeLessThan(6000);
    if (hang.accel === 'tcg') expect(hang.reason).toMatch(/no progress|failed|no \/dev\/kvm|no kernel/);
  });

  it('the accelerator is configuration: accel=tcg is reported by hostInfo', async () => {
    const info = await driver.hostInfo();
    expect(info).toMatchObject({ hypervisor: 'qemu', accel: 'tcg', capacity: { vcpus: 8, memoryMb: 8192, diskGb: 100 } });
  });

  it('a created VM is stopped with no process; started, it boots to the marker on its serial console', async () => {
    const created = await driver.createVm(spec('vm1'), ctx());
    expect(noProcess(created)).toEqual({ state: 'stopped', pid: null });
    expect(existsSync(join(dirs[0]!, 'vms/vm1/disk.qcow2'))).toBe(true);
    const t0 = Date.now();
    const started = await driver.startVm('vm1', ctx());
    expect(started.state).toBe('running');
    expect(isQemuAlive(started.pid)).toBe(true);
    await waitBoots(driver, 'vm1', 1);
    console.log(`vm1 boot to marker: ${Date.now() - t0} ms`);
    expect((await driver.hostInfo()).allocated).toEqual({ vcpus: 1, memoryMb: 256, diskGb: 1 });
  });

  it('pause stops the heartbeat and unpause resumes it from where it stopped', async () => {
    await waitHeartbeat(driver, 'vm1', 1);
    expect((await driver.pauseVm('vm1')).state).toBe('paused');
    const frozen = lastHeartbeat(await consoleText(driver, 'vm1'));
    await sleep(2500);
    expect(lastHeartbeat(await consoleText(driver, 'vm1'))).toBe(frozen);
    expect((await driver.unpauseVm('vm1')).state).toBe('running');
    expect(await waitHeartbeat(driver, 'vm1', frozen)).toBe(frozen + 1);
  });

  it('a new driver on the same state dir re-attaches to running VMs and reports a killed one as crashed', async () => {
    await driver.createVm(spec('vm-doomed', { diskGb: 0 }), ctx());
    const doomed = await driver.startVm('vm-doomed', ctx());
    const pid = (await driver.getVm('vm1')).pid;
    await driver.close();
    process.kill(doomed.pid!, 'SIGKILL');
    await sleep(300);
    driver = await newDriver(dirs[0]!);
    const vms = await driver.listVms();
    expect(vms.map((v) => [v.name, v.state])).toEqual([['vm-doomed', 'crashed'], ['vm1', 'running']]);
    expect(vms.find((v) => v.name === 'vm1')!.pid).toBe(pid);
    const last = lastHeartbeat(await consoleText(driver, 'vm1'));
    await waitHeartbeat(driver, 'vm1', last);
    expect(await driver.destroyVm('vm-doomed', ctx())).toEqual({ destroyed: true });
  });

  it('destroy leaves no process, no disk and no directory', async () => {
    const pid = (await driver.getVm('vm1')).pid;
    expect(await driver.destroyVm('vm1', ctx())).toEqual({ destroyed: true });
    expect(isQemuAlive(pid)).toBe(false);
    expect(existsSync(join(dirs[0]!, 'vms/vm1'))).toBe(false);
    expect(await driver.destroyVm('vm1', ctx())).toEqual({ destroyed: false });
  });

  it('a VM whose incoming migration has begun is read as the state it lands in: the source finishing first does not make it look paused', async () => {
    // The source's migrateSend returns when QEMU there says `completed`; the target may still be loading the
    // last of the state (`inmigrate`) for a moment. Here the transfer is slowed to make that moment seconds.
    const target = await newDriver(dirs[1]!);
    try {
      await driver.createVm(spec('vm-moving', { diskGb: 0 }), ctx());
      await driver.startVm('vm-moving', ctx());
      await waitBoots(driver, 'vm-moving', 1);
      const endpoint = await target.migrateReceive(spec('vm-moving', { diskGb: 0 }), ctx());
      // Nothing has begun: a read does not wait, and a listing never does.
      expect((await target.getVm('vm-moving')).state).toBe('paused');

      const source = await driver.qmpOf('vm-moving');
      await source.execute('migrate-set-parameters', { 'max-bandwidth': 32 * 2 ** 20 });
      await source.execute('migrate', { uri: `tcp:${endpoint.host}:${endpoint.port}` });
      const incoming = await target.qmpOf('vm-moving');
      await waitFor('the incoming migration to begin', 10_000, async () =>
        (await incoming.execute<{ status?: string }>('query-migrate')).status === 'active' || undefined);
      const listed = await target.listVms();
      expect(listed.map((v) => [v.name, v.state])).toEqual([['vm-moving', 'paused']]);
      expect((await source.execute<{ status?: string }>('query-migrate')).status).not.toBe('completed');

      const read = await target.getVm('vm-moving');
      expect(read.state).toBe('running');
      expect((await source.execute<{ status?: string }>('query-migrate')).status).toBe('completed');
      const last = lastHeartbeat(await consoleText(target, 'vm-moving'));
      await waitHeartbeat(target, 'vm-moving', last);
    } finally {
      await driver.destroyVm('vm-moving', ctx()).catch(() => undefined);
      await target.destroyVm('vm-moving', ctx()).catch(() => undefined);
      await target.close();
    }
  });
});
