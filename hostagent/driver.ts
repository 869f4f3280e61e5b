import { z } from 'zod';
import type { NetworkDataPlane } from './network.js';
import { VmState } from './vmStates.js';

/**
 * The hypervisor driver contract. The agent (protocol, SSH, idempotency) sits on top and is the same
 * for every driver; a driver only knows how to make VMs on its hypervisor. `sim` and `qemu` implement it.
 */

export const VmName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'a VM name is 1-63 letters, digits, _ . -');

/** How a VM boots: from a disk image (a qcow2 overlay is made on it), or from a kernel and initramfs (tests). */
export const BootSource = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('image'), imagePath: z.string().min(1) }),
  z.object({
    kind: z.literal('kernel'),
    kernelPath: z.string().min(1),
    initrdPath: z.string().min(1),
    cmdline: z.string().max(4096).default('console=ttyS0'),
  }),
]);
export type BootSource = z.infer<typeof BootSource>;

/** A volume or snapshot id: a file name in the pool, so no path separators. */
export const VolumeId = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'a volume id is 1-128 letters, digits, _ . -');

/**
 * A volume of the shared pool that a VM is made with: a migration's or an evacuation's twin carries the
 * source's attachments. `device` is the one the source reported at attach (getVm's `volumes[].device`):
 * the driver puts the volume on the same device again (a live migration needs the same bus layout).
 */
export const SpecVolume = z.object({ volumeId: VolumeId, sizeGb: z.number().int().min(1).max(65536), device: z.string().max(128).optional() });
export type SpecVolume = z.infer<typeof SpecVolume>;

export const VmSpec = z.object({
  name: VmName,
  vcpus: z.number().int().min(1).max(512),
  memoryMb: z.number().int().min(16).max(4 * 1024 * 1024),
  diskGb: z.number().int().min(0).max(65536),
  /** Optional for `sim`; `qemu` needs it. */
  boot: BootSource.optional(),
  /** Opaque labels the controller keeps with the VM (instance id, project id). */
  labels: z.record(z.string(), z.string().max(256)).default({}),
  /** Volumes attached from the start (a moved VM's); a volume attached later goes through attachVolume. */
  volumes: z.array(SpecVolume).max(64).default([]),
});
export type VmSpec = z.infer<typeof VmSpec>;
export type VmSpecInput = z.input<typeof VmSpec>;


export const VolumeInfo = z.object({ volumeId: z.string(), device: z.string(), path: z.string().optional() });

export const VmInfo = z.object({
  name: VmName,
  state: VmState,
  vcpus: z.number().int(),
  memoryMb: z.number().int(),
  diskGb: z.number().int(),
  labels: z.record(z.string(), z.string()),
  volumes: z.array(VolumeInfo).default([]),
  /** OS process id where the hypervisor has one (qemu). */
  pid: z.number().int().optional(),
  createdAt: z.string(),
});
export type VmInfo = z.infer<typeof VmInfo>;

export const NetCounters = z.object({
  incomingBytes: z.number().nonnegative(),
  outgoingBytes: z.number().nonnegative(),
  incomingPackets: z.number().nonnegative(),
  outgoingPackets: z.number().nonnegative(),
});
export type NetCounters = z.infer<typeof NetCounters>;

/**
 * One VM's counters at one moment (Ceilometer's pollster readings). Counters are cumulative since the
 * VM's process started; the controller derives rates (cpu_util) from two readings.
 */
export const VmSample = z.object({
  name: VmName,
  labels: z.record(z.string(), z.string()),
  at: z.string(),
  vcpus: z.number().int(),
  /** CPU time the VM's process has used, user and system, in nanoseconds. */
  cpuNs: z.number().nonnegative(),
  /** Resident memory of the VM's process, in MB. */
  memoryMb: z.number().nonnegative(),
  diskReadBytes: z.number().nonnegative(),
  diskWriteBytes: z.number().nonnegative(),
  /**
   * Network counters summed over the VM's plugged ports, from the guest's side as Ceilometer reports
   * them (incoming is what the tap sent to the guest). Absent when the VM has no port whose counters
   * could be read (no data plane, or its tap is not there yet).
   */
  network: NetCounters.optional(),
});
export type VmSample = z.infer<typeof VmSample>;

export const Resources = z.object({ vcpus: z.number().int(), memoryMb: z.number().int(), diskGb: z.number().int() });
export type Resources = z.infer<typeof Resources>;

export const HostCapacity = z.object({
  capacity: Resources,
  allocated: Resources,
  hypervisor: z.enum(['sim', 'qemu']),
  /** qemu: the accelerator chosen by the start-up probe. */
  accel: z.enum(['kvm', 'tcg', 'none']).default('none'),
});
export type HostCapacity = z.infer<typeof HostCapacity>;

/** What a long call reports while it runs; the agent streams it as `progress` messages. */
export const Progress = z.object({ percent: z.number().min(0).max(100).optional(), message: z.string() });
export type Progress = z.infer<typeof Progress>;

export interface CallContext {
  signal: AbortSignal;
  progress(p: Progress): void;
  /**
   * The caller's idempotency key for a mutating call, when there is one. The agent already dedupes by it;
   * a driver may also store it with its own state change so that change and outcome commit together.
   */
  idempotencyKey?: string;
}

/** Error codes a driver or the agent returns; `retryable` tells the controller whether trying again can help. */
export const AgentErrorCode = z.enum([
  'BAD_REQUEST', // malformed message, unknown method, bad params, oversized
  'NOT_FOUND', // no such VM / volume
  'ALREADY_EXISTS',
  'INVALID_STATE', // the VM's state does not allow the action
  'INSUFFICIENT_CAPACITY',
  'HYPERVISOR_ERROR', // the hypervisor refused or failed
  'UNAVAILABLE', // transient: connection lost, agent restarting, timed out
  'CANCELLED',
  'INTERNAL',
  'HOST_KEY_MISMATCH', // client side: the host's key is not the one registered for it
  'UNAUTHORIZED', // the agent refused the controller's key
  'UNSUPPORTED', // the driver lacks the feature (e.g. a network data plane)
]);
export type AgentErrorCode = z.infer<typeof AgentErrorCode>;

const RETRYABLE: ReadonlySet<AgentErrorCode> = new Set(['UNAVAILABLE', 'INTERNAL']);

export class AgentError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    retryable?: boolean,
  ) {
    super(message);
    this.name = 'AgentError';
    this.retryable = retryable ?? RETRYABLE.has(code);
  }
}

export const SnapshotResult = z.object({ imagePath: z.string(), sizeBytes: z.number().int().min(0) });
export type SnapshotResult = z.infer<typeof SnapshotResult>;
/** A volume file in the shared storage pool, as the host sees it. */
export const PoolVolume = z.object({ volumeId: z.string(), path: z.string(), sizeBytes: z.number().int().min(0) });
export type PoolVolume = z.infer<typeof PoolVolume>;
export const MigrationTarget = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  /** qemu: where the target exports the VM's local disk (NBD) for the source's mirror, when it has one. */
  diskPort: z.number().int().min(1).max(65535).optional(),
});
export type MigrationTarget = z.infer<typeof MigrationTarget>;
export const MigrationResult = z.object({
  downtimeMs: z.number().min(0),
  totalMs: z.number().min(0),
  transferredBytes: z.number().min(0),
});
export type MigrationResult = z.infer<typeof MigrationResult>;

export interface HypervisorDriver {
  /** Ports, rules and NAT (hostagent/network.ts); absent where the driver has no data plane yet. */
  readonly network?: NetworkDataPlane;
  readonly kind: 'sim' | 'qemu';
  /** Where the host caches base images by checksum (hostagent/imageCache.ts). */
  readonly imageCacheDir: string;
  /** Where snapshotVm writes `<imageName>.qcow2` until the controller has pulled it (hostagent/snapshotFiles.ts). */
  readonly snapshotDir: string;
  /** Called once at agent start: load state, re-attach to running VMs, probe the accelerator. */
  init(): Promise<void>;
  hostInfo(): Promise<HostCapacity>;
  listVms(): Promise<VmInfo[]>;
  getVm(name: string): Promise<VmInfo>;
  createVm(spec: VmSpec, ctx: CallContext): Promise<VmInfo>;
  startVm(name: string, ctx: CallContext): Promise<VmInfo>;
  stopVm(name: string, opts: { force: boolean }, ctx: CallContext): Promise<VmInfo>;
  rebootVm(name: string, opts: { hard: boolean }, ctx: CallContext): Promise<VmInfo>;
  pauseVm(name: string, ctx: CallContext): Promise<VmInfo>;
  unpauseVm(name: string, ctx: CallContext): Promise<VmInfo>;
  suspendVm(name: string, ctx: CallContext): Promise<VmInfo>;
  resumeVm(name: string, ctx: CallContext): Promise<VmInfo>;
  /** Removes the VM, its process and its disk. Destroying a VM that is not there is not an error. */
  destroyVm(name: string, ctx: CallContext): Promise<{ destroyed: boolean }>;
  snapshotVm(name: string, opts: { imageName: string }, ctx: CallContext): Promise<SnapshotResult>;
  attachVolume(name: string, opts: { volumeId: string; sizeGb: number }, ctx: CallContext): Promise<VmInfo>;
  detachVolume(name: string, opts: { volumeId: string }, ctx: CallContext): Promise<VmInfo>;
  /** Makes a volume file in the shared storage pool, blank or a copy of a snapshot; an existing one is kept. */
  createVolume(opts: { volumeId: string; sizeGb: number; fromSnapshotId?: string }, ctx: CallContext): Promise<PoolVolume>;
  /** Removes a volume and its snapshots from the pool; one that is not there is not an error. */
  deleteVolume(opts: { volumeId: string; snapshotIds: string[] }, ctx: CallContext): Promise<{ deleted: boolean }>;
  /** A point-in-time copy of a detached volume, kept in the pool under the snapshot's id. */
  snapshotVolume(opts: { volumeId: string; snapshotId: string }, ctx: CallContext): Promise<PoolVolume>;
  /** A stopped VM's new size; its disk grows (never shrinks) to diskGb. */
  resizeVm(name: string, size: Pick<VmSpec, 'vcpus' | 'memoryMb' | 'diskGb'>, ctx: CallContext): Promise<VmInfo>;
  /** Destination side: start a paused VM waiting for an incoming migration; returns where to send it. */
  migrateReceive(spec: VmSpec, ctx: CallContext): Promise<MigrationTarget>;
  /** Source side: send the VM; on success the source is cleaned up, on failure it keeps running here. */
  migrateSend(name: string, target: MigrationTarget, ctx: CallContext): Promise<MigrationResult>;
  /** Cold migration, target side: a stopped VM here takes the disk that arrives at the returned endpoint. */
  receiveDisk(name: string, ctx: CallContext): Promise<MigrationTarget>;
  /** Cold migration, source side: a stopped VM's disk sent to `target`; resolves once it is acknowledged. */
  sendDisk(name: string, target: MigrationTarget, ctx: CallContext): Promise<{ transferredBytes: number }>;
  consoleLog(name: string, opts: { lines: number }): Promise<{ text: string }>;
  /** The counters of every VM that is running (or paused) now. */
  sampleVms(): Promise<VmSample[]>;
  /** Agent shutdown: release handles; running VMs keep running where the hypervisor allows it. */
  close(): Promise<void>;
}
