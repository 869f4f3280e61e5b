import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import {
  AgentError,
  type CallContext,
  type HostCapacity,
  type HypervisorDriver,
  type MigrationResult,
  type MigrationTarget,
  type PoolVolume,
  type Resources,
  type SnapshotResult,
  type NetCounters,
  type VmInfo,
  type VmSample,
  type VmSpec,
} from '../../driver.js';
import { receiveFile, sendFile } from '../../diskTransfer.js';
import { SnapshotFiles } from '../../snapshotFiles.js';
import { nextVmState, type VmAction } from '../../vmStates.js';
import { SimFaultInjector } from './simFaults.js';
import { listenForMigration, sendMigration } from './simMigration.js';
import { portsByVm } from '../../network.js';
import { SimNetwork } from './simNetwork.js';
import { SimStore, type SimVm } from './simStore.js';

/** A huge host by default, like Nova's fake driver, so scale tests are limited by the controller only. */
export const SimCapacity = z.object({
  vcpus: z.coerce.number().int().min(0).default(1000),
  memoryMb: z.coerce.number().int().min(0).default(1024 * 1024),
  diskGb: z.coerce.number().int().min(0).default(100 * 1024),
});

const CONSOLE_LINES = 200;
const run = promisify(execFile);

/**
 * The `sim` hypervisor: VMs are records that follow vmStates' table, on a host with finite capacity,
 * with injectable latency and failures. Each mutating call checks, waits out its latency (if any),
 * checks again and commits its change with one atomic state write, so it happens once or not at all.
 */
export class SimDriver implements HypervisorDriver {
  readonly kind = 'sim' as const;
  private store!: SimStore;
  private readonly capacity: Resources;
  private readonly faults: SimFaultInjector;
  private readonly incoming = new Map<string, Server>();
  readonly imageCacheDir: string;
  readonly snapshotDir: string;

  constructor(
    private readonly stateDir: string,
    options: Record<string, string>,
  ) {
    this.capacity = SimCapacity.parse(options);
    this.faults = new SimFaultInjector(stateDir, options);
    this.imageCacheDir = join(stateDir, 'image-cache');
    this.snapshotDir = join(stateDir, 'sim', 'images');
  }

  network!: SimNetwork;

  async init() {
    this.store = await SimStore.load(this.stateDir);
    this.network = new SimNetwork(this.store, this.faults);
  }

  async hostInfo(): Promise<HostCapacity> {
    return { capacity: this.capacity, allocated: this.allocated(), hypervisor: 'sim', accel: 'none' };
  }

  async listVms() {
    return Object.values(this.store.state.vms).map((v) => structuredClone(v.info));
  }

  async getVm(name: string) {
    return structuredClone(this.vm(name).info);
  }

  async createVm(spec: VmSpec, ctx: CallContext) {
    return this.once(ctx, async () => {
      this.checkCreate(spec);
      await this.faults.apply('createVm', spec.name, ctx);
      this.checkCreate(spec);
      return this.add(spec, 'stopped', 'created').info;
    });
  }

  startVm = (name: string, ctx: CallContext) => this.transition('start', 'startVm', name, ctx);
  stopVm = (name: string, opts: { force: boolean }, ctx: CallContext) =>
    this.transition('stop', 'stopVm', name, ctx, opts.force ? 'powered off' : 'shut down');
  rebootVm = (name: string, opts: { hard: boolean }, ctx: CallContext) =>
    this.transition('reboot', 'rebootVm', name, ctx, opts.hard ? 'reset' : 'rebooted');
  pauseVm = (name: string, ctx: CallContext) => this.transition('pause', 'pauseVm', name, ctx);
  unpauseVm = (name: string, ctx: CallContext) => this.transition('unpause', 'unpauseVm', name, ctx);
  suspendVm = (name: string, ctx: CallContext) => this.transition('suspend', 'suspendVm', name, ctx);
  resumeVm = (name: string, ctx: CallContext) => this.transition('resume', 'resumeVm', name, ctx);

  async destroyVm(name: string, ctx: CallContext) {
    return this.once(ctx, async () => {
      if (!this.store.state.vms[name]) return { destroyed: false };
      await this.faults.apply('destroyVm', name, ctx);
      const existed = this.store.state.vms[name] !== undefined;
      delete this.store.state.vms[name];
      this.incoming.get(name)?.close();
      this.incoming.delete(name);
      return { destroyed: existed };
    });
  }

  /**
   * The sim keeps no disk bytes, so its snapshot is a real but blank qcow2 of the VM's disk size (made
   * with qemu-img, thin: a few hundred kB), written under a temporary name and renamed when whole, so
   * the controller's pull, check and store run on real image bytes.
   */
  async snapshotVm(name: string, opts: { imageName: string }, ctx: CallContext): Promise<SnapshotResult> {
    return this.once(ctx, async () => {
      this.allowed(name, 'snapshot');
      await this.faults.apply('snapshotVm', name, ctx);
      const vm = this.allowed(name, 'snapshot');
      const imagePath = new SnapshotFiles(this.snapshotDir).path(opts.imageName);
      if (existsSync(imagePath)) throw new AgentError('ALREADY_EXISTS', `image ${opts.imageName} already exists`);
      await mkdir(this.snapshotDir, { recursive: true });
      try {
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', `${imagePath}.tmp`, `${Math.max(1, vm.info.diskGb)}G`]);
      } catch (e) {
        throw new AgentError('HYPERVISOR_ERROR', `qemu-img could not write snapshot ${opts.imageName}: ${(e as Error).message}`);
      }
      await rename(`${imagePath}.tmp`, imagePath);
      say(vm, `snapshot ${opts.imageName} taken`);
      return { imagePath, sizeBytes: (await stat(imagePath)).size };
    });
  }

  async attachVolume(name: string, opts: { volumeId: string; sizeGb: number }, ctx: CallContext) {
    return this.once(ctx, async () => {
      this.allowed(name, 'attachVolume');
      await this.faults.apply('attachVolume', name, ctx);
      const vm = this.allowed(name, 'attachVolume');
      if (vm.info.volumes.some((v) => v.volumeId === opts.volumeId)) {
        throw new AgentError('ALREADY_EXISTS', `volume ${opts.volumeId} is already attached to ${name}`);
      }
      const device = freeDisk(vm.info.volumes);
      if (!device) throw new AgentError('INSUFFICIENT_CAPACITY', `${name} has no free disk slot`);
      vm.info.volumes.push({ volumeId: opts.volumeId, device });
      say(vm, `volume ${opts.volumeId} attached as ${device}`);
      return vm.info;
    });
  }

  async detachVolume(name: string, opts: { volumeId: string }, ctx: CallContext) {
    return this.once(ctx, async () => {
      this.allowed(name, 'detachVolume');
      await this.faults.apply('detachVolume', name, ctx);
      const vm = this.allowed(name, 'detachVolume');
      const before = vm.info.volumes.length;
      vm.info.volumes = vm.info.volumes.filter((v) => v.volumeId !== opts.volumeId);
      if (vm.info.volumes.length === before) throw new AgentError('NOT_FOUND', `volume ${opts.volumeId} is not attached to ${name}`);
      say(vm, `volume ${opts.volumeId} detached`);
      return vm.info;
    });
  }

  /** The sim's pool is a table in its state file; a file that is there already is kept, as on qemu. */
  async createVolume(opts: { volumeId: string; sizeGb: number; fromSnapshotId?: string }, ctx: CallContext): Promise<PoolVolume> {
    return this.once(ctx, async () => {
      if (opts.fromSnapshotId && !this.store.state.volumes[opts.fromSnapshotId]) {
        throw new AgentError('NOT_FOUND', `snapshot ${opts.fromSnapshotId} is not in the pool`);
      }
      await this.faults.apply('createVolume', opts.volumeId, ctx);
      this.store.state.volumes[opts.volumeId] ??= { sizeGb: opts.sizeGb };
      return this.poolVolume(opts.volumeId);
    });
  }

  async deleteVolume(opts: { volumeId: string; snapshotIds: string[] }, ctx: CallContext) {
    return this.once(ctx, async () => {
      const user = Object.values(this.store.state.vms).find((vm) => vm.info.volumes.some((v) => v.volumeId === opts.volumeId));
      if (user) throw new AgentError('INVALID_STATE', `volume ${opts.volumeId} is attached to ${user.info.name}`);
      await this.faults.apply('deleteVolume', opts.volumeId, ctx);
      const existed = this.store.state.volumes[opts.volumeId] !== undefined;
      for (const id of [opts.volumeId, ...opts.snapshotIds]) delete this.store.state.volumes[id];
      return { deleted: existed };
    });
  }

  async snapshotVolume(opts: { volumeId: string; snapshotId: string }, ctx: CallContext): Promise<PoolVolume> {
    return this.once(ctx, async () => {
      const source = this.store.state.volumes[opts.volumeId];
      if (!source) throw new AgentError('NOT_FOUND', `volume ${opts.volumeId} is not in the pool`);
      await this.faults.apply('snapshotVolume', opts.volumeId, ctx);
      this.store.state.volumes[opts.snapshotId] ??= { sizeGb: source.sizeGb, snapshotOf: opts.volumeId };
      return this.poolVolume(opts.snapshotId);
    });
  }

  private poolVolume(id: string): PoolVolume {
    const v = this.store.state.volumes[id]!;
    return { volumeId: id, path: join(this.stateDir, 'sim', 'pool', `${id}.qcow2`), sizeBytes: v.sizeGb * 1024 * 1024 };
  }

  async resizeVm(name: string, size: Pick<VmSpec, 'vcpus' | 'memoryMb' | 'diskGb'>, ctx: CallContext) {
    return this.once(ctx, async () => {
      this.checkResize(name, size);
      await this.faults.apply('resizeVm', name, ctx);
      const vm = this.checkResize(name, size);
      vm.info = { ...vm.info, ...size };
      say(vm, `resized to ${size.vcpus} vCPU, ${size.memoryMb} MB, ${size.diskGb} GB`);
      return vm.info;
    });
  }

  private checkResize(name: string, size: Pick<VmSpec, 'vcpus' | 'memoryMb' | 'diskGb'>): SimVm {
    const vm = this.allowed(name, 'resize');
    if (size.diskGb < vm.info.diskGb) throw new AgentError('INVALID_STATE', `the disk of ${name} cannot shrink from ${vm.info.diskGb} GB to ${size.diskGb} GB`);
    const a = this.allocated();
    const short = (['vcpus', 'memoryMb', 'diskGb'] as const).filter((r) => a[r] - vm.info[r] + size[r] > this.capacity[r]);
    if (short.length > 0) throw new AgentError('INSUFFICIENT_CAPACITY', `not enough ${short.join(', ')} to resize ${name}`);
    return vm;
  }

  async migrateReceive(spec: VmSpec, ctx: CallContext): Promise<MigrationTarget> {
    return this.once(ctx, async () => {
      this.checkCreate(spec);
      await this.faults.apply('migrateReceive', spec.name, ctx);
      this.checkCreate(spec);
      // Waits paused, as qemu -incoming does, until the source's record arrives.
      const vm = this.add(spec, 'paused', 'waiting for incoming migration');
      const host = '127.0.0.1';
      const { server, port } = await listenForMigration(host, async (sent) => {
        const here = this.store.state.vms[spec.name];
        if (!here) throw new Error(`${spec.name} is no longer waiting here`);
        here.info = { ...sent, state: 'running', createdAt: vm.info.createdAt };
        say(here, 'migration received; running');
        this.incoming.delete(spec.name);
        await this.store.save();
      });
      this.incoming.set(spec.name, server);
      return { host, port };
    });
  }

  async migrateSend(name: string, target: MigrationTarget, ctx: CallContext): Promise<MigrationResult> {
    return this.once(ctx, async () => {
      const started = Date.now();
      this.allowed(name, 'migrate');
      await this.faults.apply('migrateSend', name, ctx);
      const vm = this.allowed(name, 'migrate');
      ctx.progress({ percent: 90, message: 'switching over' });
      const pausedAt = Date.now();
      let transferredBytes: number;
      try {
        transferredBytes = await sendMigration(target, vm.info);
      } catch (e) {
        throw new AgentError('HYPERVISOR_ERROR', `migration of ${name} to ${target.host}:${target.port} failed: ${(e as Error).message}; it keeps running here`);
      }
      delete this.store.state.vms[name];
      return { downtimeMs: Date.now() - pausedAt, totalMs: Date.now() - started, transferredBytes };
    });
  }

  /** The sim keeps no disk bytes: a one-line stand-in travels over the same TCP choreography as qemu's disk. */
  async receiveDisk(name: string, ctx: CallContext): Promise<MigrationTarget> {
    return this.once(ctx, async () => {
      this.allowed(name, 'resize');
      await this.faults.apply('receiveDisk', name, ctx);
      const dir = join(this.stateDir, 'sim', 'disks');
      await mkdir(dir, { recursive: true });
      const { port } = await receiveFile('127.0.0.1', join(dir, `${name}.disk`));
      return { host: '127.0.0.1', port };
    });
  }

  async sendDisk(name: string, target: MigrationTarget, ctx: CallContext) {
    return this.once(ctx, async () => {
      const vm = this.allowed(name, 'resize');
      await this.faults.apply('sendDisk', name, ctx);
      const dir = join(this.stateDir, 'sim', 'disks');
      await mkdir(dir, { recursive: true });
      const path = join(dir, `${name}.disk`);
      await writeFile(path, `sim disk of ${name}, ${vm.info.diskGb} GB\n`);
      try {
        return { transferredBytes: await sendFile(path, target) };
      } catch (e) {
        throw new AgentError('HYPERVISOR_ERROR', `disk of ${name} not sent to ${target.host}:${target.port}: ${(e as Error).message}`);
      }
    });
  }

  async consoleLog(name: string, opts: { lines: number }) {
    return { text: this.vm(name).console.slice(-opts.lines).join('\n') };
  }

  async close() {
    for (const s of this.incoming.values()) s.close();
    this.incoming.clear();
    await this.store?.save();
  }

  /** Runs a mutating call at most once per idempotency key: a key already in the state file replays its result. */
  private async once<T>(ctx: CallContext, run: () => Promise<T>): Promise<T> {
    const replay = this.store.appliedResult(ctx.idempotencyKey);
    if (replay) return replay.result as T;
    const result = await run();
    return this.store.commit(ctx.idempotencyKey, structuredClone(result));
  }

  private transition(action: VmAction, method: string, name: string, ctx: CallContext, note?: string) {
    return this.once(ctx, async () => {
      this.allowed(name, action);
      await this.faults.apply(method, name, ctx);
      // Checked again: another call may have moved the VM while this one waited out its latency.
      const vm = this.allowed(name, action);
      vm.info.state = nextVmState(vm.info.state, action)!;
      say(vm, `${note ?? action}; now ${vm.info.state}`);
      return vm.info;
    });
  }

  private vm(name: string): SimVm {
    const vm = this.store.state.vms[name];
    if (!vm) throw new AgentError('NOT_FOUND', `no VM named ${name}`);
    return vm;
  }

  private allowed(name: string, action: VmAction): SimVm {
    const vm = this.vm(name);
    if (!nextVmState(vm.info.state, action)) {
      throw new AgentError('INVALID_STATE', `cannot ${action} ${name}: it is ${vm.info.state}`);
    }
    return vm;
  }

  private checkCreate(spec: VmSpec) {
    if (this.store.state.vms[spec.name]) throw new AgentError('ALREADY_EXISTS', `a VM named ${spec.name} exists`);
    // As on qemu, whose disk would be an overlay on it: an image boot needs the image on this host.
    if (spec.boot?.kind === 'image' && !existsSync(spec.boot.imagePath)) throw new AgentError('NOT_FOUND', `image ${spec.boot.imagePath} does not exist`);
    const a = this.allocated();
    const short = (['vcpus', 'memoryMb', 'diskGb'] as const).filter((r) => a[r] + spec[r] > this.capacity[r]);
    if (short.length > 0) {
      throw new AgentError(
        'INSUFFICIENT_CAPACITY',
        `not enough ${short.map((r) => `${r} (${this.capacity[r] - a[r]} free, ${spec[r]} asked)`).join(', ')}`,
      );
    }
  }

  private add(spec: VmSpec, state: 'stopped' | 'paused', note: string): SimVm {
    const { name, vcpus, memoryMb, diskGb, labels } = spec;
    // A moved VM's volumes keep the devices they had on the source; one without a device takes the next free.
    const volumes: VmInfo['volumes'] = spec.volumes.filter((v) => v.device).map((v) => ({ volumeId: v.volumeId, device: v.device! }));
    for (const v of spec.volumes.filter((x) => !x.device)) volumes.push({ volumeId: v.volumeId, device: freeDisk(volumes) ?? 'vdz' });
    const vm: SimVm = {
      info: { name, state, vcpus, memoryMb, diskGb, labels, volumes, createdAt: new Date().toISOString() },
      console: [],
    };
    say(vm, note);
    if (spec.boot?.kind === 'image') say(vm, `disk vda: an overlay on ${spec.boot.imagePath}`);
    this.store.state.vms[name] = vm;
    return vm;
  }

  /**
   * Plausible counters from the clock alone: CPU time at a steady share of the vCPUs (label
   * `simCpuLoad`, 0-1, default 0.05), half the memory resident, a trickle of disk traffic, and for
   * each plugged port a steady stream since it was plugged: 2 kB/s in and 1 kB/s out, in 500-byte packets.
   */
  async sampleVms(): Promise<VmSample[]> {
    const now = Date.now();
    const ports = await portsByVm(this.network);
    return Object.values(this.store.state.vms)
      .filter(({ info }) => info.state === 'running' || info.state === 'paused')
      .map(({ info }) => {
        const elapsedMs = Math.max(0, now - Date.parse(info.createdAt));
        const load = Math.min(1, Math.max(0, Number(info.labels.simCpuLoad ?? 0.05) || 0));
        const mine = ports.get(info.name) ?? [];
        const network = mine.length === 0 ? undefined : simPortCounters(mine.map((p) => Math.max(0, now - Date.parse(p.createdAt))));
        return {
          ...(network ? { network } : {}),
          name: info.name,
          labels: { ...info.labels },
          at: new Date(now).toISOString(),
          vcpus: info.vcpus,
          cpuNs: Math.round(elapsedMs * 1e6 * info.vcpus * load),
          memoryMb: info.memoryMb / 2,
          diskReadBytes: Math.round(elapsedMs * 4),
          diskWriteBytes: Math.round(elapsedMs * 2),
        };
      });
  }

  /** Every VM on the host holds its resources, running or not, as Nova's resource tracker counts them. */
  private allocated(): Resources {
    const sum = { vcpus: 0, memoryMb: 0, diskGb: 0 };
    for (const { info } of Object.values(this.store.state.vms)) {
      sum.vcpus += info.vcpus;
      sum.memoryMb += info.memoryMb;
      sum.diskGb += info.diskGb;
    }
    return sum;
  }
}

/** The sim's per-port traffic, summed over the ports plugged for `pluggedMs` each. */
function simPortCounters(pluggedMs: readonly number[]): NetCounters {
  const inBytes = pluggedMs.reduce((sum, ms) => sum + Math.round(ms * 2), 0);
  const outBytes = pluggedMs.reduce((sum, ms) => sum + Math.round(ms), 0);
  return { incomingBytes: inBytes, outgoingBytes: outBytes, incomingPackets: Math.floor(inBytes / 500), outgoingPackets: Math.floor(outBytes / 500) };
}

function say(vm: SimVm, line: string) {
  vm.console.push(`[${new Date().toISOString()}] ${vm.info.name}: ${line}`);
  if (vm.console.length > CONSOLE_LINES) vm.console.splice(0, vm.console.length - CONSOLE_LINES);
}

/** The first virtio disk name no volume of the VM holds (vda is the boot disk). */
function freeDisk(volumes: { device: string }[]): string | undefined {
  const used = new Set(volumes.map((v) => v.device));
  return [...'bcdefghijklmnopqrstuvwxyz'].map((c) => `vd${c}`).find((d) => !used.has(d));
}
