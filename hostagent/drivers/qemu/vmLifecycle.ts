import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { AgentError, type CallContext, type MigrationResult, type MigrationTarget, type VmSpec } from '../../driver.js';
import type { VmState } from '../../vmStates.js';
import type { VmPaths } from './commandLine.js';
import { exportDisk, mirrorDisk, runMigration, shellQuote, stopMirror, unexportDisk, waitIncomingDone } from './migration.js';
import type { QemuDriver } from './qemuDriver.js';
import { createDisk } from './storage.js';
import { launchQemu, readPid, waitGone, writeRecord, type VmRecord } from './vmProcess.js';

/**
 * The QEMU side of each lifecycle action. The driver has already taken the VM's lock and checked the
 * transition; these only make QEMU do it.
 */
export class VmLifecycle {
  constructor(private readonly d: QemuDriver) {}

  async start(name: string, rec: VmRecord, ctx: CallContext): Promise<void> {
    const paths = this.d.paths(name);
    ctx.progress({ message: 'launching QEMU' });
    writeRecord(paths, { ...rec, desired: 'running' });
    try {
      const { qmp } = await launchQemu(paths, this.d.argv(rec, paths));
      this.d.adopt(name, qmp);
      await this.d.plugTaps(name);
    } catch (e) {
      // A QEMU whose NICs could not join the data plane is not left running unplugged.
      await this.d.terminate(name).catch(() => undefined);
      writeRecord(paths, { ...rec, desired: 'stopped' });
      throw e;
    }
  }

  /**
   * Soft stop: ACPI power button, then `quit` if the guest has not powered off within stopTimeoutMs.
   * A paused guest cannot see the button, so it (and force) goes straight to `quit`.
   */
  async stop(name: string, rec: VmRecord, state: VmState, force: boolean, ctx: CallContext): Promise<void> {
    const paths = this.d.paths(name);
    if (!force && state === 'running') {
      const qmp = await this.d.qmpOf(name);
      const off = qmp.waitEvent('SHUTDOWN', this.d.options.stopTimeoutMs).then(
        () => true,
        () => false,
      );
      ctx.progress({ message: 'ACPI power-down sent, waiting for the guest' });
      await qmp.execute('system_powerdown');
      if (!(await off)) ctx.progress({ message: `guest still on after ${this.d.options.stopTimeoutMs} ms: quitting QEMU` });
    }
    writeRecord(paths, { ...rec, desired: 'stopped' });
    await this.d.terminate(name);
  }

  /**
   * Soft reboot sends ctrl-alt-del (`send-key`) and lets the guest restart itself; if QEMU sees no RESET
   * within rebootTimeoutMs it falls back to a hard `system_reset`, which is what a hard reboot does at once.
   */
  async reboot(name: string, hard: boolean, ctx: CallContext): Promise<void> {
    const qmp = await this.d.qmpOf(name);
    if (!hard) {
      const reset = qmp.waitEvent('RESET', this.d.options.rebootTimeoutMs).then(
        () => true,
        () => false,
      );
      const keys = ['ctrl', 'alt', 'delete'].map((k) => ({ type: 'qcode', data: k }));
      await qmp.execute('send-key', { keys });
      if (await reset) return;
      ctx.progress({ message: 'guest ignored ctrl-alt-del: hard reset' });
    }
    await qmp.execute('system_reset');
  }

  /**
   * Suspend = pause, stream the VM state out with `migrate` to a unix socket this process writes to a file,
   * then quit QEMU. (Not `exec:cat > file`: QEMU SIGTERMs the helper as soon as it closes the pipe, which
   * can cut the file short.) Resume starts QEMU with `-incoming exec:cat <file>` and `cont`s it.
   */
  async suspend(name: string, rec: VmRecord, state: VmState, ctx: CallContext): Promise<void> {
    const paths = this.d.paths(name);
    const qmp = await this.d.qmpOf(name);
    if (state === 'running') await qmp.execute('stop');
    const tmp = paths.savedState + '.tmp';
    const sock = `${paths.dir}/save.sock`;
    rmSync(sock, { force: true });
    const written = receiveToFile(sock, tmp);
    try {
      await written.listening;
      await runMigration(qmp, `unix:${sock}`, { block: false, ctx, what: 'saving VM state' });
      await written.done;
    } catch (e) {
      written.abort();
      if (state === 'running') await qmp.execute('cont').catch(() => undefined);
      throw e;
    } finally {
      rmSync(sock, { force: true });
    }
    renameSync(tmp, paths.savedState);
    writeRecord(paths, { ...rec, desired: 'stopped', suspended: true });
    await this.d.terminate(name);
  }

  async resume(name: string, rec: VmRecord, ctx: CallContext): Promise<void> {
    const paths = this.d.paths(name);
    if (!existsSync(paths.savedState)) throw new AgentError('INTERNAL', `VM ${name} is suspended but its saved state is missing`);
    ctx.progress({ message: 'restoring VM state' });
    const { qmp } = await launchQemu(paths, this.d.argv(rec, paths, 'defer'));
    this.d.adopt(name, qmp);
    try {
      await this.d.plugTaps(name);
      await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(paths.savedState)}` });
      await waitIncomingDone(qmp, 10 * 60_000);
      await qmp.execute('cont');
    } catch (e) {
      await this.d.terminate(name);
      throw e;
    }
    writeRecord(paths, { ...rec, desired: 'running', suspended: false });
    rmSync(paths.savedState, { force: true });
  }

  /**
   * Destination: the same VM (same disk layout, made empty or on the same base image) in a QEMU waiting
   * with `-incoming defer`; `migrate-incoming` returns once it listens, so the source can connect at once.
   * QEMU starts the guest by itself when the state has arrived (no -S), so no second call is needed.
   */
  async receive(spec: VmSpec, ctx: CallContext): Promise<MigrationTarget> {
    const paths = this.d.paths(spec.name);
    if (existsSync(paths.dir)) throw new AgentError('ALREADY_EXISTS', `VM ${spec.name} already exists`);
    mkdirSync(paths.dir, { recursive: true });
    try {
      // The shared volumes are opened here as they are on the source (same files, same slots); QEMU keeps
      // them inactive, unlocked and unwritten until the source lets go of them at the switch-over.
      const volumes = this.d.specVolumes(spec);
      const hasDisk = await createDisk(paths, spec);
      const rec: VmRecord = { spec: { ...spec, volumes: [] }, createdAt: new Date().toISOString(), hasDisk, volumes, desired: 'running', suspended: false };
      writeRecord(paths, rec);
      ctx.progress({ message: 'starting the destination QEMU' });
      const { qmp } = await launchQemu(paths, this.d.argv(rec, paths, 'defer'));
      this.d.adopt(spec.name, qmp);
      await this.d.plugTaps(spec.name);
      const listen = this.d.options.migrationListen;
      let diskPort: number | undefined;
      if (hasDisk) {
        diskPort = await freePort(listen);
        await exportDisk(qmp, listen, diskPort);
        // Once the VM runs here the source's mirror has nothing more to send: the export goes.
        void waitIncomingDone(qmp, 24 * 3600_000)
          .then(() => unexportDisk(qmp))
          .catch(() => undefined);
      }
      const port = await freePort(listen);
      await qmp.execute('migrate-incoming', { uri: `tcp:${listen}:${port}` });
      return { host: this.d.options.migrationAdvertise ?? listen, port, ...(diskPort ? { diskPort } : {}) };
    } catch (e) {
      await this.d.terminate(spec.name).catch(() => undefined);
      rmSync(paths.dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Source: live migration; on success the source QEMU and files go, on failure the VM keeps running here. */
  async send(name: string, rec: VmRecord, target: MigrationTarget, ctx: CallContext): Promise<MigrationResult> {
    if (rec.hasDisk && !target.diskPort) throw new AgentError('BAD_REQUEST', `the target of ${name} exports no disk to mirror to`);
    const paths: VmPaths = this.d.paths(name);
    const qmp = await this.d.qmpOf(name);
    let result: MigrationResult;
    const started = Date.now();
    try {
      if (rec.hasDisk) {
        ctx.progress({ message: 'mirroring the disk to the target' });
        await mirrorDisk(qmp, { host: target.host, port: target.diskPort! }, { ctx, timeoutMs: 60 * 60_000 });
      }
      result = await runMigration(qmp, `tcp:${target.host}:${target.port}`, { block: false, ctx, what: 'migration' });
    } catch (e) {
      if (rec.hasDisk) await stopMirror(qmp, true);
      const s = await qmp.execute<{ status: string }>('query-status').catch(() => undefined);
      if (s && s.status !== 'running') await qmp.execute('cont').catch(() => undefined);
      throw e;
    }
    if (rec.hasDisk) await stopMirror(qmp, false);
    // QEMU's total-time counts the memory migration only; the send took the disk mirror's time too.
    result = { ...result, totalMs: Math.max(result.totalMs, Date.now() - started) };
    ctx.progress({ percent: 100, message: `migrated (downtime ${result.downtimeMs} ms): cleaning up the source` });
    writeRecord(paths, { ...rec, desired: 'stopped' });
    const pid = readPid(paths);
    await this.d.terminate(name);
    await waitGone(pid, 5000);
    rmSync(paths.dir, { recursive: true, force: true });
    return result;
  }
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A one-connection unix socket server that writes what it receives to `file`. */
function receiveToFile(sock: string, file: string) {
  let abort = () => {};
  let onListening = () => {};
  const listening = new Promise<void>((r) => (onListening = r));
  const done = new Promise<void>((resolve, reject) => {
    const srv = createServer((conn) => {
      srv.close();
      const out = createWriteStream(file);
      conn.pipe(out);
      out.once('finish', () => resolve());
      out.once('error', reject);
      conn.once('error', reject);
    });
    srv.once('error', reject);
    srv.listen(sock, () => onListening());
    abort = () => {
      srv.close();
      rmSync(file, { force: true });
    };
  });
  done.catch(() => undefined);
  return { listening, done, abort };
}
