import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { AgentError, type CallContext, type VmSpec } from '../../driver.js';
import { rootPort, volumeDevice, volumeNode, volumeSerial, type AttachedVolume, type VmPaths } from './commandLine.js';
import type { QmpClient } from './qmp.js';
import { runTool } from './vmProcess.js';

/**
 * Disks, volumes and snapshots. A VM's disk is a qcow2 overlay on its image (or a blank qcow2 for a kernel
 * boot with diskGb > 0); volumes are standalone qcow2 files under <stateDir>/volumes; a snapshot is a
 * standalone qcow2 under <stateDir>/images that any VM can boot from.
 */

const GiB = 2 ** 30;

/** Makes the VM's disk; returns whether it has one. */
export async function createDisk(paths: VmPaths, spec: VmSpec): Promise<boolean> {
  const boot = spec.boot;
  if (boot?.kind === 'image') {
    const base = resolve(boot.imagePath);
    if (!existsSync(base)) throw new AgentError('NOT_FOUND', `image ${base} does not exist`);
    const info = JSON.parse(await runTool('qemu-img', ['info', '--output=json', base])) as { format: string; 'virtual-size': number };
    const args = ['create', '-q', '-f', 'qcow2', '-b', base, '-F', info.format, paths.disk];
    // The overlay is never smaller than its base; a larger diskGb grows it.
    if (spec.diskGb * GiB > info['virtual-size']) args.push(String(spec.diskGb * GiB));
    await runTool('qemu-img', args);
    return true;
  }
  if (spec.diskGb > 0) {
    await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', paths.disk, `${spec.diskGb}G`]);
    return true;
  }
  return false;
}

/** A stopped VM's disk, grown to `diskGb` (qcow2 grows in place; the guest sees it at its next boot). */
export async function growDisk(paths: VmPaths, diskGb: number): Promise<void> {
  await runTool('qemu-img', ['resize', '-q', '-f', 'qcow2', paths.disk, `${diskGb}G`]);
}

/** Grows the disk to `diskGb` when it is smaller (a received disk under a grown flavor); never shrinks it. */
export async function fitDisk(paths: VmPaths, diskGb: number): Promise<void> {
  const info = JSON.parse(await runTool('qemu-img', ['info', '--output=json', paths.disk])) as { 'virtual-size': number };
  if (info['virtual-size'] < diskGb * GiB) await growDisk(paths, diskGb);
}

/**
 * A disk that arrived from another host (a cold move) made this host's own: an overlay names its base by
 * the source's path, which is the source's image cache, so it is pointed at this host's cached copy of
 * the same image (the spec's boot source; the same checksum, so the same bytes, and `rebase -u` only
 * rewrites the name), then grown to the flavor. A disk without a base is only grown.
 */
export async function adoptDisk(paths: VmPaths, spec: VmSpec): Promise<void> {
  const boot = spec.boot;
  if (boot?.kind === 'image') {
    // `info` reads the overlay's header only: the source's base need not exist here.
    const disk = JSON.parse(await runTool('qemu-img', ['info', '--output=json', '-f', 'qcow2', paths.disk])) as { 'backing-filename'?: string };
    const base = resolve(boot.imagePath);
    if (disk['backing-filename'] && disk['backing-filename'] !== base) {
      if (!existsSync(base)) throw new AgentError('NOT_FOUND', `image ${base} does not exist`);
      const info = JSON.parse(await runTool('qemu-img', ['info', '--output=json', base])) as { format: string };
      await runTool('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', base, '-F', info.format, paths.disk]);
    }
  }
  await fitDisk(paths, spec.diskGb);
}

export async function ensureVolumeFile(path: string, sizeGb: number): Promise<void> {
  if (existsSync(path)) return;
  await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', path + '.tmp', `${sizeGb}G`]);
  renameSync(path + '.tmp', path);
}

/** Hot-plug: the block node first, then a virtio-blk device on the volume's own pcie-root-port. */
export async function hotplugVolume(qmp: QmpClient, v: AttachedVolume): Promise<void> {
  const node = volumeNode(v.volumeId);
  await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: v.path } });
  try {
    await qmp.execute('device_add', {
      driver: 'virtio-blk-pci',
      id: volumeDevice(v.volumeId),
      drive: node,
      bus: rootPort(v.slot),
      serial: volumeSerial(v.volumeId),
    });
  } catch (e) {
    await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
    throw new AgentError('HYPERVISOR_ERROR', `device_add for volume ${v.volumeId}: ${(e as Error).message}`);
  }
}

/**
 * Hot-unplug needs the guest to let go of the device (ACPI eject); DEVICE_DELETED says it did. A paused or
 * unresponsive guest never does, so this gives up after `timeoutMs` and the volume stays attached.
 */
export async function hotunplugVolume(qmp: QmpClient, v: AttachedVolume, timeoutMs: number): Promise<void> {
  const id = volumeDevice(v.volumeId);
  const deleted = qmp.waitEvent('DEVICE_DELETED', timeoutMs, (e) => e.data?.device === id);
  try {
    await qmp.execute('device_del', { id });
    await deleted;
  } catch (e) {
    deleted.catch(() => undefined);
    throw new AgentError('HYPERVISOR_ERROR', `volume ${v.volumeId} was not released by the guest: ${(e as Error).message}`);
  }
  await qmp.execute('blockdev-del', { 'node-name': volumeNode(v.volumeId) });
}

/**
 * A standalone copy of the disk. Live (running or paused) it is QMP `drive-backup sync=full`: a
 * point-in-time, crash-consistent copy made while the guest keeps running, with the backing chain folded
 * in. With no process it is `qemu-img convert` of the overlay. Written to a temporary name, renamed when whole.
 */
export async function snapshotDisk(paths: VmPaths, target: string, qmp: QmpClient | undefined, ctx: CallContext): Promise<number> {
  const tmp = target + '.tmp';
  rmSync(tmp, { force: true });
  if (!qmp) {
    ctx.progress({ message: 'converting the disk to a standalone image' });
    await runTool('qemu-img', ['convert', '-O', 'qcow2', paths.disk, tmp]);
  } else {
    const jobId = 'snapshot';
    const done = qmp.waitEvent('BLOCK_JOB_COMPLETED', 30 * 60_000, (e) => e.data?.device === jobId);
    await qmp.execute('drive-backup', { 'job-id': jobId, device: 'disk0', sync: 'full', target: tmp, format: 'qcow2', mode: 'absolute-paths' });
    const timer = setInterval(() => {
      qmp
        .execute<Array<{ device: string; offset: number; len: number }>>('query-block-jobs')
        .then((jobs) => {
          const j = jobs.find((x) => x.device === jobId);
          if (j && j.len > 0) ctx.progress({ percent: Math.round((100 * j.offset) / j.len), message: 'copying the disk' });
        })
        .catch(() => undefined);
    }, 500);
    try {
      const ev = await done;
      if (ev.data?.error) throw new AgentError('HYPERVISOR_ERROR', `snapshot copy failed: ${String(ev.data.error)}`);
    } finally {
      clearInterval(timer);
    }
  }
  renameSync(tmp, target);
  return statSync(target).size;
}
