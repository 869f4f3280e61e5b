import { spawn } from 'node:child_process';
import { inSpan } from '../../../server/telemetry.js';
import { commandLineOf } from '../../../server/procfs.js';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { AgentError, VmSpec } from '../../driver.js';
import { QEMU_BINARY, type VmPaths } from './commandLine.js';
import { QmpClient } from './qmp.js';

/**
 * A VM's record on disk (vm.json next to its QEMU files) and its QEMU process. The record holds what the
 * driver asked for; the process and QMP say what is. A dead process whose record says `running` crashed.
 */

export const AttachedVolumeRecord = z.object({ volumeId: z.string(), sizeGb: z.number(), path: z.string(), slot: z.number().int() });

export const VmRecord = z.object({
  spec: VmSpec,
  createdAt: z.string(),
  hasDisk: z.boolean(),
  volumes: z.array(AttachedVolumeRecord).default([]),
  /** What the driver last asked of the process: a process gone while this says `running` crashed. */
  desired: z.enum(['stopped', 'running']),
  suspended: z.boolean().default(false),
});
export type VmRecord = z.infer<typeof VmRecord>;

export function readRecord(paths: VmPaths): VmRecord | undefined {
  if (!existsSync(paths.record)) return undefined;
  return VmRecord.parse(JSON.parse(readFileSync(paths.record, 'utf8')));
}

/** Written whole and renamed into place, so a crash never leaves half a record. */
export function writeRecord(paths: VmPaths, record: VmRecord): void {
  writeFileSync(paths.record + '.tmp', JSON.stringify(record, null, 2));
  renameSync(paths.record + '.tmp', paths.record);
  writeFileSync(paths.spec, JSON.stringify(record.spec, null, 2));
}

export function readPid(paths: VmPaths): number | undefined {
  try {
    const pid = Number(readFileSync(paths.pid, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Alive and still QEMU (not a zombie nobody reaps, not a recycled pid running something else). */
export function isQemuAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return commandLineOf(pid)?.some((arg) => arg.includes('qemu-system')) ?? false;
  } catch {
    return false;
  }
}

export async function waitGone(pid: number | undefined, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (isQemuAlive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

export async function killHard(pid: number | undefined): Promise<void> {
  if (!isQemuAlive(pid)) return;
  try {
    process.kill(pid!, 'SIGKILL');
  } catch {
    /* already gone */
  }
  await waitGone(pid, 5000);
}

/**
 * Runs QEMU with `-daemonize`: the parent exits once the VM is set up (so errors arrive on stderr here)
 * and the VM lives on in its own session, outliving the agent.
 */
export async function launchQemu(paths: VmPaths, argv: string[]): Promise<{ pid: number; qmp: QmpClient }> {
  // sun_path holds 107 bytes: a deeper state dir cannot carry a QMP socket, so say so instead of QEMU's riddle.
  if (Buffer.byteLength(paths.qmp) > 107) {
    throw new AgentError('HYPERVISOR_ERROR', `QMP socket path too long for a unix socket (${paths.qmp}): use a shorter --state-dir`);
  }
  rmSync(paths.qmp, { force: true });
  rmSync(paths.pid, { force: true });
  const child = spawn(QEMU_BINARY, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new AgentError('HYPERVISOR_ERROR', `QEMU failed to start (exit ${code}): ${out.trim()}`);
  const pid = readPid(paths);
  if (!pid) throw new AgentError('HYPERVISOR_ERROR', 'QEMU started but wrote no pidfile');
  const qmp = await connectQmp(paths, 10_000);
  return { pid, qmp };
}

/** QMP takes one client at a time; the driver keeps this one per VM for as long as the process lives. */
export async function connectQmp(paths: VmPaths, timeoutMs: number): Promise<QmpClient> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await QmpClient.connect(paths.qmp, Math.max(1000, until - Date.now()));
    } catch (e) {
      if (Date.now() > until) throw new AgentError('HYPERVISOR_ERROR', `cannot reach QMP at ${paths.qmp}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export function runTool(cmd: string, args: string[]): Promise<string> {
  return inSpan(`${cmd} ${args[0] ?? ''}`.trim(), { attributes: { 'process.command': cmd, 'process.command_args': args } }, () => runToolUntraced(cmd, args));
}

async function runToolUntraced(cmd: string, args: string[]): Promise<string> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new AgentError('HYPERVISOR_ERROR', `${cmd} ${args[0]} failed: ${err.trim() || out.trim()}`);
  return out;
}
