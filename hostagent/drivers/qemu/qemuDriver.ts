import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { componentLog } from '../../../server/log.js';
import {
  AgentError, VmName,
  type CallContext, type HostCapacity, type HypervisorDriver, type MigrationResult, type MigrationTarget,
  type PoolVolume, type Resources, type SnapshotResult, type VmInfo, type VmSample, type VmSpec,
} from '../../driver.js';
import { portsByVm, type PortInfo } from '../../network.js';
import { nextVmState, type VmAction, type VmState } from '../../vmStates.js';
import { buildQemuArgv, vmPaths, type Accel, type AttachedVolume, type QemuLaunch, type VmPaths } from './commandLine.js';
import { hostResources, parseCapacity, probeKvm } from './hostProbe.js';
import { QemuOptions } from './options.js';
import type { QmpClient } from './qmp.js';
import { receiveFile, sendFile } from '../../diskTransfer.js';
import { adoptDisk, createDisk, ensureVolumeFile, growDisk, hotplugVolume, hotunplugVolume, snapshotDisk } from './storage.js';
import { VmLifecycle } from './vmLifecycle.js';
import { INCOMING_SETTLE_MS, settleIncoming } from './migration.js';
import { sampleQemuVm } from './vmSamples.js';
import { VolumePool } from './volumePool.js';
import { NetworkOptions, QemuNetwork } from './qemuNetwork.js';
import { connectQmp, isQemuAlive, killHard, readPid, readRecord, waitGone, writeRecord, type VmRecord } from './vmProcess.js';

const log = componentLog('qemu-driver');

/**
 * The QEMU driver: one daemonized QEMU per running VM, driven over QMP. Files live in
 * <stateDir>/vms/<name>/ (vm.json, spec.json, disk.qcow2, console.log, qmp.sock, qemu.pid), images in
 * <stateDir>/images and volumes in the shared storage pool (the `storagePool` option; <stateDir>/volumes by default). The record says what the driver asked for, the
 * live process says what is; see `stateOf`.
 */
export class QemuDriver implements HypervisorDriver {
  readonly kind = 'qemu' as const;
  readonly options: QemuOptions;
  accel: Accel = 'tcg';
  accelReason = 'not probed';
  private capacity: Resources = { vcpus: 0, memoryMb: 0, diskGb: 0 };
  private readonly qmps = new Map<string, QmpClient>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly lifecycle: VmLifecycle;
  readonly pool: VolumePool;
  readonly imageCacheDir: string;
  /** The Linux data plane, when the `netNamespace` option names the agent's namespace. */
  readonly network?: QemuNetwork;
  readonly snapshotDir: string;

  constructor(
    readonly stateDir: string,
    rawOptions: Record<string, string> = {},
  ) {
    this.options = QemuOptions.parse(rawOptions);
    this.lifecycle = new VmLifecycle(this);
    this.pool = new VolumePool(this.options.storagePool ?? join(stateDir, 'volumes'));
    this.imageCacheDir = join(stateDir, 'image-cache');
    const net = NetworkOptions.parse(rawOptions);
    if (net.netNamespace) this.network = new QemuNetwork(stateDir, { ...net, netNamespace: net.netNamespace });
    this.snapshotDir = join(stateDir, 'images');
  }

  async init(): Promise<void> {
    for (const d of ['vms', 'images']) mkdirSync(join(this.stateDir, d), { recursive: true });
    mkdirSync(this.pool.dir, { recursive: true });
    await this.network?.init();
    this.capacity = parseCapacity(this.options.capacity, hostResources(this.stateDir));
    if (this.options.accel === 'auto') {
      const probe = await probeKvm({ kernel: this.options.probeKernel, timeoutMs: this.options.probeTimeoutMs });
      this.accel = probe.accel;
      this.accelReason = probe.reason;
    } else {
      this.accel = this.options.accel;
      this.accelReason = 'configured';
    }
    log.info({ accel: this.accel, reason: this.accelReason }, 'accelerator chosen');
    // Re-attach: a live QEMU gets its QMP connection back; a dead one is reported by stateOf (crashed).
    for (const name of this.vmNames()) {
      const paths = this.paths(name);
      if (isQemuAlive(readPid(paths))) {
        try {
          await this.qmpOf(name);
        } catch (e) {
          log.warn({ vm: name, err: (e as Error).message }, 'running VM but QMP unreachable');
        }
      }
    }
  }

  async hostInfo(): Promise<HostCapacity> {
    const allocated: Resources = { vcpus: 0, memoryMb: 0, diskGb: 0 };
    for (const name of this.vmNames()) {
      const rec = readRecord(this.paths(name));
      if (!rec) continue;
      allocated.vcpus += rec.spec.vcpus;
      allocated.memoryMb += rec.spec.memoryMb;
      allocated.diskGb += rec.spec.diskGb;
    }
    return { capacity: this.capacity, allocated, hypervisor: 'qemu', accel: this.accel };
  }

  async listVms(): Promise<VmInfo[]> {
    const out: VmInfo[] = [];
    for (const name of this.vmNames()) {
      const rec = readRecord(this.paths(name));
      if (rec) out.push(await this.info(name, rec, false));
    }
    return out;
  }

  async sampleVms(): Promise<VmSample[]> {
    const samples: VmSample[] = [];
    // Ports come from the data plane when this driver has one; without, a VM simply has no network counters.
    const ports = await portsByVm((this as HypervisorDriver).network).catch(() => new Map<string, PortInfo[]>());
    for (const vm of await this.listVms()) {
      if (vm.pid === undefined || (vm.state !== 'running' && vm.state !== 'paused')) continue;
      const taps = (ports.get(vm.name) ?? []).map((p) => p.tap);
      // A VM that stops between the listing and its reading is simply not sampled this round.
      const sample = await sampleQemuVm({ ...vm, pid: vm.pid }, await this.qmpOf(vm.name), taps).catch(() => undefined);
      if (sample) samples.push(sample);
    }
    return samples;
  }

  async getVm(name: string): Promise<VmInfo> {
    return this.info(name, this.record(name));
  }

  createVm(asked: VmSpec, ctx: CallContext): Promise<VmInfo> {
    const spec = this.withBootSource(asked);
    return this.locked(spec.name, async () => {
      if (!spec.boot) throw new AgentError('BAD_REQUEST', 'the qemu driver needs spec.boot (an image or a kernel)');
      const paths = this.paths(spec.name);
      if (existsSync(paths.dir)) throw new AgentError('ALREADY_EXISTS', `VM ${spec.name} already exists`);
      const host = await this.hostInfo();
      for (const k of ['vcpus', 'memoryMb', 'diskGb'] as const) {
        if (host.allocated[k] + spec[k] > host.capacity[k]) {
          throw new AgentError('INSUFFICIENT_CAPACITY', `${k}: ${host.allocated[k]} allocated + ${spec[k]} > ${host.capacity[k]}`);
        }
      }
      mkdirSync(paths.dir, { recursive: true });
      try {
        ctx.progress({ message: 'creating the disk' });
        const volumes = this.specVolumes(spec);
        const hasDisk = await createDisk(paths, spec);
        const rec: VmRecord = { spec: { ...spec, volumes: [] }, createdAt: new Date().toISOString(), hasDisk, volumes, desired: 'stopped', suspended: false };
        writeRecord(paths, rec);
        return this.info(spec.name, rec);
      } catch (e) {
        rmSync(paths.dir, { recursive: true, force: true });
        throw e;
      }
    });
  }

  startVm(name: string, ctx: CallContext) {
    return this.act(name, 'start', (rec) => this.lifecycle.start(name, rec, ctx));
  }
  stopVm(name: string, opts: { force: boolean }, ctx: CallContext) {
    return this.act(name, 'stop', (rec, state) => this.lifecycle.stop(name, rec, state, opts.force, ctx));
  }
  rebootVm(name: string, opts: { hard: boolean }, ctx: CallContext) {
    return this.act(name, 'reboot', () => this.lifecycle.reboot(name, opts.hard, ctx));
  }
  pauseVm(name: string) {
    return this.act(name, 'pause', async () => void (await (await this.qmpOf(name)).execute('stop')));
  }
  unpauseVm(name: string) {
    return this.act(name, 'unpause', async () => void (await (await this.qmpOf(name)).execute('cont')));
  }
  suspendVm(name: string, ctx: CallContext) {
    return this.act(name, 'suspend', (rec, state) => this.lifecycle.suspend(name, rec, state, ctx));
  }
  resumeVm(name: string, ctx: CallContext) {
    return this.act(name, 'resume', (rec) => this.lifecycle.resume(name, rec, ctx));
  }

  destroyVm(name: string, ctx: CallContext): Promise<{ destroyed: boolean }> {
    return this.locked(name, async () => {
      const paths = this.paths(name);
      if (!existsSync(paths.dir)) return { destroyed: false };
      ctx.progress({ message: 'stopping QEMU' });
      await this.terminate(name);
      rmSync(paths.dir, { recursive: true, force: true });
      return { destroyed: true };
    });
  }

  snapshotVm(name: string, opts: { imageName: string }, ctx: CallContext): Promise<SnapshotResult> {
    return this.locked(name, async () => {
      const rec = this.record(name);
      this.check(name, await this.stateOf(name, rec), 'snapshot');
      if (!rec.hasDisk) throw new AgentError('INVALID_STATE', `VM ${name} has no disk to snapshot`);
      if (!VmName.safeParse(opts.imageName).success) throw new AgentError('BAD_REQUEST', `bad image name ${opts.imageName}`);
      const imagePath = join(this.snapshotDir, `${opts.imageName}.qcow2`);
      if (existsSync(imagePath)) throw new AgentError('ALREADY_EXISTS', `image ${opts.imageName} already exists`);
      const live = isQemuAlive(readPid(this.paths(name))) ? await this.qmpOf(name) : undefined;
      const sizeBytes = await snapshotDisk(this.paths(name), imagePath, live, ctx);
      return { imagePath, sizeBytes };
    });
  }

  attachVolume(name: string, opts: { volumeId: string; sizeGb: number }, ctx: CallContext): Promise<VmInfo> {
    return this.act(name, 'attachVolume', async (rec) => {
      if (rec.volumes.some((v) => v.volumeId === opts.volumeId)) return;
      if (!VmName.safeParse(opts.volumeId).success) throw new AgentError('BAD_REQUEST', `bad volume id ${opts.volumeId}`);
      for (const other of this.vmNames()) {
        if (other !== name && readRecord(this.paths(other))?.volumes.some((v) => v.volumeId === opts.volumeId)) {
          throw new AgentError('INVALID_STATE', `volume ${opts.volumeId} is attached to ${other}`);
        }
      }
      const used = new Set(rec.volumes.map((v) => v.slot));
      const slot = [...Array(this.options.hotplugSlots).keys()].map((i) => i + 1).find((s) => !used.has(s));
      if (!slot) throw new AgentError('INVALID_STATE', `VM ${name} has no free volume slot (${this.options.hotplugSlots})`);
      const live = isQemuAlive(readPid(this.paths(name)));
      if (live && this.options.machine === 'microvm') {
        throw new AgentError('INVALID_STATE', 'microvm has no hot-plug: stop the VM to attach a volume');
      }
      const volume = { volumeId: opts.volumeId, sizeGb: opts.sizeGb, path: this.pool.volumePath(opts.volumeId), slot };
      ctx.progress({ message: 'creating the volume' });
      await ensureVolumeFile(volume.path, opts.sizeGb);
      if (live) await hotplugVolume(await this.qmpOf(name), volume);
      writeRecord(this.paths(name), { ...rec, volumes: [...rec.volumes, volume] });
    });
  }

  detachVolume(name: string, opts: { volumeId: string }, ctx: CallContext): Promise<VmInfo> {
    return this.act(name, 'detachVolume', async (rec) => {
      const volume = rec.volumes.find((v) => v.volumeId === opts.volumeId);
      if (!volume) throw new AgentError('NOT_FOUND', `volume ${opts.volumeId} is not attached to ${name}`);
      if (isQemuAlive(readPid(this.paths(name)))) {
        if (this.options.machine === 'microvm') throw new AgentError('INVALID_STATE', 'microvm has no hot-plug: stop the VM to detach');
        ctx.progress({ message: 'waiting for the guest to release the device' });
        await hotunplugVolume(await this.qmpOf(name), volume, this.options.detachTimeoutMs);
      }
      writeRecord(this.paths(name), { ...rec, volumes: rec.volumes.filter((v) => v !== volume) });
    });
  }

  createVolume(opts: { volumeId: string; sizeGb: number; fromSnapshotId?: string }, ctx: CallContext): Promise<PoolVolume> {
    return this.locked(`volume:${opts.volumeId}`, () => this.pool.create(opts, ctx));
  }

  deleteVolume(opts: { volumeId: string; snapshotIds: string[] }): Promise<{ deleted: boolean }> {
    return this.locked(`volume:${opts.volumeId}`, async () => {
      for (const other of this.vmNames()) {
        if (readRecord(this.paths(other))?.volumes.some((v) => v.volumeId === opts.volumeId)) {
          throw new AgentError('INVALID_STATE', `volume ${opts.volumeId} is attached to ${other}`);
        }
      }
      return this.pool.delete(opts);
    });
  }

  snapshotVolume(opts: { volumeId: string; snapshotId: string }, ctx: CallContext): Promise<PoolVolume> {
    return this.locked(`volume:${opts.volumeId}`, () => this.pool.snapshot(opts, ctx));
  }

  resizeVm(name: string, size: Pick<VmSpec, 'vcpus' | 'memoryMb' | 'diskGb'>, ctx: CallContext): Promise<VmInfo> {
    return this.act(name, 'resize', async (rec) => {
      if (size.diskGb < rec.spec.diskGb) throw new AgentError('INVALID_STATE', `the disk of ${name} cannot shrink from ${rec.spec.diskGb} GB to ${size.diskGb} GB`);
      const host = await this.hostInfo();
      for (const k of ['vcpus', 'memoryMb', 'diskGb'] as const) {
        if (host.allocated[k] - rec.spec[k] + size[k] > host.capacity[k]) throw new AgentError('INSUFFICIENT_CAPACITY', `${k}: no room to resize ${name}`);
      }
      if (rec.hasDisk && size.diskGb > rec.spec.diskGb) {
        ctx.progress({ message: `growing the disk to ${size.diskGb} GB` });
        await growDisk(this.paths(name), size.diskGb);
      }
      writeRecord(this.paths(name), { ...rec, spec: { ...rec.spec, ...size } });
    });
  }

  /**
   * The volumes a VM is made with (a moved VM's twin): files of the shared pool, each on the root port its
   * device names (`… on rp<slot>`, as the source reported it) so a live migration finds the same bus
   * layout; one without a usable slot takes the first free one. A volume the pool lacks is NOT_FOUND.
   */
  specVolumes(spec: VmSpec): AttachedVolume[] {
    const slots = this.options.hotplugSlots;
    const out: AttachedVolume[] = [];
    const rest: VmSpec['volumes'] = [];
    for (const v of spec.volumes) {
      const slot = Number(/ on rp(\d+)$/.exec(v.device ?? '')?.[1]);
      if (Number.isInteger(slot) && slot >= 1 && slot <= slots && !out.some((o) => o.slot === slot)) {
        out.push({ volumeId: v.volumeId, sizeGb: v.sizeGb, path: this.pool.volumePath(v.volumeId), slot });
      } else {
        rest.push(v);
      }
    }
    for (const v of rest) {
      const slot = [...Array(slots).keys()].map((i) => i + 1).find((n) => !out.some((o) => o.slot === n));
      if (!slot) throw new AgentError('INVALID_STATE', `VM ${spec.name} has no free volume slot (${slots})`);
      out.push({ volumeId: v.volumeId, sizeGb: v.sizeGb, path: this.pool.volumePath(v.volumeId), slot });
    }
    for (const v of out) {
      if (!existsSync(v.path)) throw new AgentError('NOT_FOUND', `volume ${v.volumeId} is not in the storage pool ${this.pool.dir}`);
    }
    return out;
  }

  migrateReceive(spec: VmSpec, ctx: CallContext): Promise<MigrationTarget> {
    return this.locked(spec.name, () => this.lifecycle.receive(this.withBootSource(spec), ctx));
  }

  /** The spec with the host's configured kernel boot when the controller named no boot source. */
  private withBootSource(spec: VmSpec): VmSpec {
    const { bootKernel, bootInitrd, bootCmdline } = this.options;
    if (spec.boot || !bootKernel || !bootInitrd) return spec;
    return { ...spec, boot: { kind: 'kernel', kernelPath: bootKernel, initrdPath: bootInitrd, cmdline: bootCmdline } };
  }

  migrateSend(name: string, target: MigrationTarget, ctx: CallContext): Promise<MigrationResult> {
    return this.locked(name, async () => {
      const rec = this.record(name);
      this.check(name, await this.stateOf(name, rec), 'migrate');
      return this.lifecycle.send(name, rec, target, ctx);
    });
  }

  receiveDisk(name: string, ctx: CallContext): Promise<MigrationTarget> {
    return this.locked(name, async () => {
      const rec = this.record(name);
      this.check(name, await this.stateOf(name, rec), 'resize');
      if (!rec.hasDisk) throw new AgentError('INVALID_STATE', `VM ${name} has no disk to receive`);
      const paths = this.paths(name);
      // Before it is acknowledged, the disk that arrives is put on this host's copy of its base image and
      // grown to the flavor (which may have grown with a resize).
      const { port, done } = await receiveFile(this.options.migrationListen, paths.disk, () => adoptDisk(paths, rec.spec));
      done.catch((e: unknown) => log.warn({ vm: name, err: (e as Error).message }, 'disk receive failed'));
      ctx.progress({ message: `waiting for the disk of ${name}` });
      return { host: this.options.migrationAdvertise ?? this.options.migrationListen, port };
    });
  }

  sendDisk(name: string, target: MigrationTarget, ctx: CallContext): Promise<{ transferredBytes: number }> {
    return this.locked(name, async () => {
      const rec = this.record(name);
      this.check(name, await this.stateOf(name, rec), 'resize');
      if (!rec.hasDisk) return { transferredBytes: 0 };
      ctx.progress({ message: `sending the disk of ${name}` });
      return { transferredBytes: await sendFile(this.paths(name).disk, target) };
    });
  }

  async consoleLog(name: string, opts: { lines: number }): Promise<{ text: string }> {
    const paths = this.paths(name);
    this.record(name);
    if (!existsSync(paths.console)) return { text: '' };
    const text = readFileSync(paths.console, 'utf8');
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return { text: lines.slice(-Math.max(0, opts.lines)).join('\n') };
  }

  async close(): Promise<void> {
    for (const q of this.qmps.values()) q.close();
    this.qmps.clear();
  }

  // ---- internals shared with VmLifecycle ----

  paths(name: string): VmPaths {
    if (!VmName.safeParse(name).success) throw new AgentError('BAD_REQUEST', `bad VM name ${name}`);
    return vmPaths(this.stateDir, name);
  }

  record(name: string): VmRecord {
    const rec = readRecord(this.paths(name));
    if (!rec) throw new AgentError('NOT_FOUND', `no VM ${name}`);
    return rec;
  }

  launchSpec(rec: VmRecord, paths: VmPaths, incoming?: string): QemuLaunch {
    return {
      spec: rec.spec, paths, accel: this.accel, machine: this.options.machine, hasDisk: rec.hasDisk, volumes: rec.volumes,
      hotplugSlots: this.options.machine === 'q35' ? this.options.hotplugSlots : 0, uefiFirmware: this.options.uefiFirmware,
      incoming, daemonize: true, nics: this.network?.nicsOf(rec.spec.name) ?? [],
    };
  }

  argv(rec: VmRecord, paths: VmPaths, incoming?: string): string[] {
    return buildQemuArgv(this.launchSpec(rec, paths, incoming));
  }

  /** After QEMU started with the VM's NICs: their taps join the data plane. */
  async plugTaps(name: string): Promise<void> {
    await this.network?.attachVm(name);
  }

  adopt(name: string, qmp: QmpClient): void {
    this.qmps.get(name)?.close();
    this.qmps.set(name, qmp);
    qmp.on('close', () => {
      if (this.qmps.get(name) === qmp) this.qmps.delete(name);
    });
  }

  /** The VM's QMP connection, reconnecting when the agent restarted or the connection dropped. */
  async qmpOf(name: string): Promise<QmpClient> {
    const existing = this.qmps.get(name);
    if (existing && !existing.isClosed) return existing;
    const paths = this.paths(name);
    if (!isQemuAlive(readPid(paths))) throw new AgentError('INVALID_STATE', `VM ${name} has no running QEMU`);
    const qmp = await connectQmp(paths, 5000);
    this.adopt(name, qmp);
    return qmp;
  }

  /** Ends the VM's QEMU: `quit` over QMP, SIGKILL when that does not work. */
  async terminate(name: string): Promise<void> {
    const paths = this.paths(name);
    const pid = readPid(paths);
    if (!isQemuAlive(pid)) return;
    try {
      const qmp = await this.qmpOf(name);
      await qmp.execute('quit', undefined, 5000).catch(() => undefined);
    } catch {
      /* fall through to SIGKILL */
    }
    if (!(await waitGone(pid, 10_000))) await killHard(pid);
    this.qmps.get(name)?.close();
    this.qmps.delete(name);
  }

  /**
   * What the VM is now. `settle`: a twin whose incoming live migration has begun is reported as the state
   * it lands in, not as the `inmigrate` pause it is in until QEMU has loaded the last of it: the source's
   * `migrateSend` can return before that, and whatever the controller asks of the VM next (a `getVm`, a
   * pause) must find it running. Listings do not wait.
   */
  async stateOf(name: string, rec: VmRecord, settle = true): Promise<VmState> {
    if (rec.suspended) return 'suspended';
    const paths = this.paths(name);
    if (isQemuAlive(readPid(paths))) {
      let status: string;
      try {
        const qmp = await this.qmpOf(name);
        status = (await qmp.execute<{ status: string }>('query-status', undefined, 5000)).status;
        if (status === 'inmigrate' && settle) status = await settleIncoming(qmp, INCOMING_SETTLE_MS);
      } catch {
        return 'running';
      }
      switch (status) {
        case 'running':
          return 'running';
        case 'shutdown':
          // The guest powered itself off (-no-shutdown keeps QEMU around so we can tell): that is a stop.
          await this.terminate(name);
          writeRecord(paths, { ...this.record(name), desired: 'stopped' });
          return 'stopped';
        case 'guest-panicked':
        case 'internal-error':
          return 'crashed';
        default:
          return 'paused';
      }
    }
    return rec.desired === 'running' ? 'crashed' : 'stopped';
  }

  check(name: string, state: VmState, action: VmAction): void {
    if (!nextVmState(state, action)) throw new AgentError('INVALID_STATE', `cannot ${action} VM ${name}: it is ${state}`);
  }

  private async info(name: string, rec: VmRecord, settle = true): Promise<VmInfo> {
    const state = await this.stateOf(name, rec, settle);
    const pid = readPid(this.paths(name));
    const current = this.record(name);
    return {
      name, state, vcpus: current.spec.vcpus, memoryMb: current.spec.memoryMb, diskGb: current.spec.diskGb, labels: current.spec.labels,
      volumes: current.volumes.map((v) => ({ volumeId: v.volumeId, device: `virtio-blk ${v.volumeId.slice(0, 20)} on rp${v.slot}`, path: v.path })),
      pid: isQemuAlive(pid) ? pid : undefined,
      createdAt: current.createdAt,
    };
  }

  /** Checks the transition, runs `fn` under the VM's lock, returns the VM as it is afterwards. */
  private act(name: string, action: VmAction, fn: (rec: VmRecord, state: VmState) => Promise<void>): Promise<VmInfo> {
    return this.locked(name, async () => {
      const rec = this.record(name);
      const state = await this.stateOf(name, rec);
      this.check(name, state, action);
      await fn(rec, state);
      return this.info(name, this.record(name));
    });
  }

  /** One action per VM at a time: a later call waits for the earlier one. */
  private locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    // QMP refusals and tool failures reach the controller as HYPERVISOR_ERROR, with QEMU's words.
    const run = prev.catch(() => undefined).then(fn).catch((e: unknown) => {
      throw e instanceof AgentError ? e : new AgentError('HYPERVISOR_ERROR', e instanceof Error ? e.message : String(e));
    });
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }

  private vmNames(): string[] {
    const dir = join(this.stateDir, 'vms');
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((n) => VmName.safeParse(n).success && existsSync(join(dir, n, 'vm.json'))).sort();
  }
}
