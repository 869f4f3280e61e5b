import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { VmSpec } from '../../driver.js';

/**
 * The QEMU command line for a VM, in one place: the driver launches it and bench/qemu.ts launches the
 * identical argv by hand to measure what the agent adds.
 *
 * Machine type: `q35` by default, because any running VM may get a volume and only q35 hot-plugs (through
 * the `pcie-root-port`s made here, one per volume slot). `microvm` boots faster but has no hot-plug, so with
 * `machine=microvm` volumes are attached only while the VM is stopped and are cold-plugged at start.
 */

export type Accel = 'kvm' | 'tcg';
export type Machine = 'q35' | 'microvm';

export const QEMU_BINARY = 'qemu-system-x86_64';
/** UEFI firmware for `image` boots: OVMF boots both GPT/EFI cloud images and the tests' FAT disk. */
export const DEFAULT_UEFI_FIRMWARE = '/usr/share/ovmf/OVMF.fd';

export interface VmPaths {
  dir: string;
  qmp: string;
  pid: string;
  console: string;
  disk: string;
  spec: string;
  record: string;
  savedState: string;
}

export function vmPaths(stateDir: string, name: string): VmPaths {
  const dir = join(stateDir, 'vms', name);
  return {
    dir,
    qmp: join(dir, 'qmp.sock'),
    pid: join(dir, 'qemu.pid'),
    console: join(dir, 'console.log'),
    disk: join(dir, 'disk.qcow2'),
    spec: join(dir, 'spec.json'),
    record: join(dir, 'vm.json'),
    savedState: join(dir, 'suspended.state'),
  };
}

export interface AttachedVolume { volumeId: string; sizeGb: number; path: string; slot: number }

/** QEMU ids and node names must be short and start with a letter; volume ids are the controller's. */
export const volumeNode = (volumeId: string) => 'vol' + createHash('sha1').update(volumeId).digest('hex').slice(0, 12);
export const volumeDevice = (volumeId: string) => 'dev' + createHash('sha1').update(volumeId).digest('hex').slice(0, 12);
/** virtio-blk serials are at most 20 bytes; the guest shows it as /dev/disk/by-id/virtio-<serial>. */
export const volumeSerial = (volumeId: string) => volumeId.replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 20);
export const rootPort = (slot: number) => `rp${slot}`;

export interface QemuLaunch {
  spec: VmSpec;
  paths: VmPaths;
  accel: Accel;
  machine: Machine;
  hasDisk: boolean;
  volumes: AttachedVolume[];
  /** Number of `pcie-root-port`s (q35): the most volumes a VM can hold. */
  hotplugSlots: number;
  uefiFirmware?: string;
  /** `-incoming` URI: a migration destination or a resume from a saved state. */
  incoming?: string;
  /** Fork into the background (the agent's VMs outlive it); the bench's by-hand launch does the same. */
  daemonize: boolean;
  /** virtio-net NICs on taps QEMU opens by name (qemuNetwork.ts moves them into the agent's namespace). */
  nics?: { tap: string; mac: string }[];
}

/** QEMU option values end at a comma; a literal comma (in a path) is written twice. */
const v = (s: string) => s.replace(/,/g, ',,');

export function buildQemuArgv(l: QemuLaunch): string[] {
  const { spec, paths, machine } = l;
  const q35 = machine === 'q35';
  const blk = q35 ? 'virtio-blk-pci' : 'virtio-blk-device';
  const argv = [
    '-name', `guest=${spec.name}`,
    '-machine', q35 ? 'q35' : 'microvm,rtc=on',
    '-accel', l.accel,
    '-cpu', l.accel === 'kvm' ? 'host' : 'max',
    '-m', String(spec.memoryMb),
    '-smp', String(spec.vcpus),
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
    // A guest power-off leaves QEMU in the `shutdown` run state instead of exiting, so a driver that was
    // away (agent restart) can still tell a clean power-off from a crash.
    '-no-shutdown',
    '-chardev', `file,id=ser0,path=${v(paths.console)},append=on`,
    '-serial', 'chardev:ser0',
    '-qmp', `unix:${v(paths.qmp)},server=on,wait=off`,
    '-pidfile', paths.pid,
  ];
  if (l.daemonize) argv.push('-daemonize');
  const boot = spec.boot;
  if (boot?.kind === 'kernel') {
    argv.push('-kernel', boot.kernelPath, '-initrd', boot.initrdPath, '-append', boot.cmdline);
  } else if (boot?.kind === 'image' && q35) {
    argv.push('-bios', l.uefiFirmware ?? DEFAULT_UEFI_FIRMWARE);
  }
  if (l.hasDisk) {
    // -drive (not -blockdev) gives the disk a named BlockBackend, which block migration needs.
    argv.push('-drive', `file=${v(paths.disk)},if=none,id=disk0,format=qcow2,cache=writeback`);
    // -kernel claims bootindex 0 for its option ROM, so only a disk boot names the disk first.
    const bootindex = boot?.kind === 'image' ? ',bootindex=0' : '';
    argv.push('-device', q35 ? `${blk},drive=disk0,bus=pcie.0,addr=0x5${bootindex}` : `${blk},drive=disk0`);
  }
  if (q35) {
    for (let slot = 1; slot <= l.hotplugSlots; slot++) {
      argv.push('-device', `pcie-root-port,id=${rootPort(slot)},chassis=${slot},bus=pcie.0,addr=0x${(0x10 + slot - 1).toString(16)}`);
    }
  }
  for (const vol of l.volumes) {
    argv.push('-blockdev', `driver=qcow2,node-name=${volumeNode(vol.volumeId)},file.driver=file,file.filename=${v(vol.path)}`);
    const bus = q35 ? `,bus=${rootPort(vol.slot)}` : '';
    argv.push('-device', `${blk},id=${volumeDevice(vol.volumeId)},drive=${volumeNode(vol.volumeId)},serial=${volumeSerial(vol.volumeId)}${bus}`);
  }
  (l.nics ?? []).forEach((nic, i) => {
    argv.push('-netdev', `tap,id=nic${i},ifname=${nic.tap},script=no,downscript=no`);
    // No option ROM: the guests boot from a kernel or a disk, never from the network.
    const dev = q35 ? `virtio-net-pci,bus=pcie.0,addr=0x${(0x6 + i).toString(16)},romfile=` : 'virtio-net-device';
    argv.push('-device', `${dev},netdev=nic${i},mac=${nic.mac}`);
  });
  if (l.incoming) argv.push('-incoming', l.incoming);
  return argv;
}
