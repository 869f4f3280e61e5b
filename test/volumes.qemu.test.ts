import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostAgentClient } from '../hostagent/client.js';
import type { MethodName, ParamsOf, ResultOf } from '../hostagent/protocol.js';
import { isQemuAlive } from '../hostagent/drivers/qemu/vmProcess.js';
import { bootCount, buildTestGuest, consoleText, killQemusUnder, lastBlockLine, waitBlock, waitBoots, waitFor, type TestGuest } from './support/guest.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';

/**
 * Volumes in a storage pool shared by two qemu hosts, on real QEMU under TCG: a 1 GB volume made in the
 * pool by host A is hot-plugged into a running guest on A, which writes a marker to it; detached and
 * hot-plugged into a guest on host B, that guest reads the same marker back. A snapshot of it carries
 * the marker into a volume made from it.
 */

let guest: TestGuest;
let pool: string;
let a: AgentProcess;
let b: AgentProcess;
let ca: HostAgentClient;
let cb: HostAgentClient;

function host(client: () => HostAgentClient) {
  return <M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> =>
    client().call(method, params, { idempotencyKey: randomUUID(), timeoutMs: 120_000 });
}
const onA = host(() => ca);
const onB = host(() => cb);
const consoleOf = (call: typeof onA) => ({ consoleLog: (name: string, opts: { lines: number }) => call('consoleLog', { name, lines: opts.lines }) });

/** The marker a guest reported for a volume device: WROTE on a blank one, HOLDS on one already marked. */
const markerSeen = (source: ReturnType<typeof consoleOf>, name: string, verb: 'WROTE' | 'HOLDS', device: string) =>
  waitFor(`${name} to report ${verb} on ${device}`, 30_000, async () => {
    const m = [...(await consoleText(source, name)).matchAll(new RegExp(`STRATUS-VOLUME ${device} ${verb} (STRATUS-MARK-\\w+)`, 'g'))].at(-1);
    return m?.[1];
  });

beforeAll(async () => {
  guest = buildTestGuest();
  pool = mkdtempSync(join(tmpdir(), 'stratus-pool-'));
  const driverOptions = { accel: 'tcg', capacity: '8,8192,100', storagePool: pool, detachTimeoutMs: 20_000 };
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
  for (const d of [...dirs, pool]) if (d) rmSync(d, { recursive: true, force: true });
});

describe.sequential('volumes in a shared pool across two qemu hosts (TCG)', () => {
  const volumeId = `vol-${randomUUID()}`;
  const kernelSpec = (name: string) => ({
    name, vcpus: 1, memoryMb: 256, diskGb: 0,
    boot: { kind: 'kernel' as const, kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline: guest.cmdline },
  });

  it('a 1 GB volume hot-plugged into a running guest appears as a block device, and the guest writes its marker to it', async () => {
    const made = await onA('createVolume', { volumeId, sizeGb: 1 });
    expect(made.path).toBe(join(pool, `${volumeId}.qcow2`));
    expect(existsSync(made.path)).toBe(true);
    await onA('createVm', { spec: kernelSpec('guest-a') });
    await onA('startVm', { name: 'guest-a' });
    await onB('createVm', { spec: kernelSpec('guest-b') });
    await onB('startVm', { name: 'guest-b' });
    await waitBoots(consoleOf(onA), 'guest-a', 1);
    await waitBlock(consoleOf(onA), 'guest-a', '-');

    const attached = await onA('attachVolume', { name: 'guest-a', volumeId, sizeGb: 1 });
    expect(attached.volumes).toEqual([expect.objectContaining({ volumeId, path: made.path })]);
    await waitBlock(consoleOf(onA), 'guest-a', 'vda');
    const marker = await markerSeen(consoleOf(onA), 'guest-a', 'WROTE', 'vda');

    expect((await onA('detachVolume', { name: 'guest-a', volumeId })).volumes).toEqual([]);
    await waitBlock(consoleOf(onA), 'guest-a', '-');

    // The same file, reached by the other host through the shared pool.
    await waitBoots(consoleOf(onB), 'guest-b', 1);
    await onB('attachVolume', { name: 'guest-b', volumeId, sizeGb: 1 });
    await waitBlock(consoleOf(onB), 'guest-b', 'vda');
    expect(await markerSeen(consoleOf(onB), 'guest-b', 'HOLDS', 'vda')).toBe(marker);
  });

  it('a guest with a local disk and an attached volume live-migrates: the target reopens the same volume on the same device and the guest reads its marker there', async () => {
    const movingId = `vol-${randomUUID()}`;
    await onA('createVolume', { volumeId: movingId, sizeGb: 1 });
    await onA('createVm', { spec: { ...kernelSpec('mover'), diskGb: 1 } });
    await onA('startVm', { name: 'mover' });
    await waitBoots(consoleOf(onA), 'mover', 1);
    await waitBlock(consoleOf(onA), 'mover', 'vda');
    const attached = await onA('attachVolume', { name: 'mover', volumeId: movingId, sizeGb: 1 });
    await waitBlock(consoleOf(onA), 'mover', 'vda,vdb');
    const marker = await markerSeen(consoleOf(onA), 'mover', 'WROTE', 'vdb');
    const device = attached.volumes.find((v) => v.volumeId === movingId)!.device;
    const sourcePid = attached.pid;

    const target = await onB('migrateReceive', { spec: { ...kernelSpec('mover'), diskGb: 1, volumes: [{ volumeId: movingId, sizeGb: 1, device }] } });
    expect(target.diskPort).toBeGreaterThan(0);
    const result = await onA('migrateSend', { name: 'mover', target });
    expect(result.downtimeMs).toBeGreaterThan(0);
    expect(isQemuAlive(sourcePid)).toBe(false);
    await expect(onA('getVm', { name: 'mover' })).rejects.toMatchObject({ code: 'NOT_FOUND' });

    const moved = await onB('getVm', { name: 'mover' });
    expect(moved.state).toBe('running');
    expect(moved.volumes).toEqual([{ volumeId: movingId, device, path: join(pool, `${movingId}.qcow2`) }]);
    // The same boot on the target (it never started there), still holding both disks, and its periodic
    // read of the volume (page cache dropped) finds the marker written on the source.
    const text = await waitFor('the moved guest to read its volume', 60_000, async () => {
      const t = await consoleText(consoleOf(onB), 'mover');
      return /STRATUS-VOLUME vdb READS STRATUS-MARK-/.test(t) ? t : undefined;
    });
    expect(bootCount(text)).toBe(0);
    expect([...text.matchAll(/STRATUS-VOLUME vdb READS (\S*)/g)].map((m) => m[1])).toEqual(expect.arrayContaining([marker]));
    expect([...text.matchAll(/STRATUS-VOLUME vdb READS (\S*)/g)].every((m) => m[1] === marker)).toBe(true);
    // The guest prints STRATUS-BLOCK whenever its set of disks changes: on the target it never did.
    expect(lastBlockLine(text)).toBeUndefined();

    // A volume the pool does not hold is refused before any VM is made.
    await expect(onB('migrateReceive', { spec: { ...kernelSpec('stray'), volumes: [{ volumeId: 'vol-not-there', sizeGb: 1 }] } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(existsSync(join(b.stateDir, 'vms/stray'))).toBe(false);

    await onB('destroyVm', { name: 'mover' });
    expect(existsSync(join(pool, `${movingId}.qcow2`))).toBe(true);
    expect(await onB('deleteVolume', { volumeId: movingId, snapshotIds: [] })).toEqual({ deleted: true });
  });

  it('an attached volume cannot be deleted; a snapshot of the detached one carries its marker into a new volume', async () => {
    await expect(onB('deleteVolume', { volumeId, snapshotIds: [] })).rejects.toMatchObject({ code: 'INVALID_STATE' });
    const marker = await markerSeen(consoleOf(onB), 'guest-b', 'HOLDS', 'vda');
    await onB('detachVolume', { name: 'guest-b', volumeId });
    await waitBlock(consoleOf(onB), 'guest-b', '-');

    const snapshotId = `snap-${randomUUID()}`;
    const snapshot = await onA('snapshotVolume', { volumeId, snapshotId });
    expect(statSync(snapshot.path).size).toBeGreaterThan(0);
    const copyId = `vol-${randomUUID()}`;
    await onA('createVolume', { volumeId: copyId, sizeGb: 1, fromSnapshotId: snapshotId });
    const before = (await consoleText(consoleOf(onA), 'guest-a')).length;
    await onA('attachVolume', { name: 'guest-a', volumeId: copyId, sizeGb: 1 });
    await waitFor('guest-a to read the copy', 30_000, async () => {
      const text = (await consoleText(consoleOf(onA), 'guest-a')).slice(before);
      return text.includes(`HOLDS ${marker}`) ? true : undefined;
    });

    await onA('detachVolume', { name: 'guest-a', volumeId: copyId });
    expect(await onA('deleteVolume', { volumeId, snapshotIds: [snapshotId] })).toEqual({ deleted: true });
    expect(existsSync(join(pool, `${volumeId}.qcow2`))).toBe(false);
    expect(existsSync(snapshot.path)).toBe(false);
    expect(await onA('deleteVolume', { volumeId, snapshotIds: [] })).toEqual({ deleted: false });
  });
});
