import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Resources } from '../../driver.js';
import { QEMU_BINARY, type Accel } from './commandLine.js';

/**
 * What the host offers: the accelerator (probed once at start) and its capacity.
 *
 * The KVM probe boots a kernel under `-accel kvm` and waits for "Linux version" on the serial port. Opening
 * /dev/kvm and even running the BIOS is not enough: on nested hosts KVM can accept everything and then hang
 * the vCPU once the kernel leaves real mode (seen here: "Probing EDD" printed, then nothing). A probe that
 * does not see the kernel speak within the timeout is killed and the driver falls back to TCG.
 */

export function findProbeKernel(explicit?: string): string | undefined {
  if (explicit) return explicit;
  if (!existsSync('/boot')) return undefined;
  const kernels = readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).sort();
  const last = kernels.at(-1);
  return last ? join('/boot', last) : undefined;
}

export interface ProbeResult { accel: Accel; reason: string }

export async function probeKvm(opts: { kernel?: string; timeoutMs: number; cpu?: string }): Promise<ProbeResult> {
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', reason: 'no /dev/kvm' };
  const kernel = findProbeKernel(opts.kernel);
  if (!kernel) return { accel: 'tcg', reason: 'no kernel to probe KVM with (set driver option probeKernel)' };
  const dir = mkdtempSync(join(tmpdir(), 'stratus-kvm-probe-'));
  const serial = join(dir, 'serial.log');
  const child = spawn(
    QEMU_BINARY,
    ['-accel', 'kvm', '-machine', 'q35', '-cpu', opts.cpu ?? 'host', '-m', '128', '-nodefaults', '-no-user-config', '-display', 'none',
      '-serial', `file:${serial}`, '-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1 loglevel=7'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  const started = Date.now();
  try {
    while (Date.now() - started < opts.timeoutMs) {
      if (existsSync(serial) && readFileSync(serial, 'utf8').includes('Linux version')) {
        return { accel: 'kvm', reason: `kernel printed under KVM in ${Date.now() - started} ms` };
      }
      if (exited) return { accel: 'tcg', reason: `QEMU with KVM failed: ${stderr.trim().split('\n').at(-1) ?? 'exited'}` };
      await new Promise((r) => setTimeout(r, 50));
    }
    return { accel: 'tcg', reason: `a KVM guest made no progress in ${opts.timeoutMs} ms (nested KVM hang?)` };
  } finally {
    if (!exited) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** vCPUs, memory and disk of this host, from /proc and the state dir's file system. */
export function hostResources(stateDir: string): Resources {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const vcpus = cpuinfo.split('\n').filter((l) => /^processor\s*:/.test(l)).length || 1;
  const mem = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  const memoryMb = mem ? Math.floor(Number(mem[1]) / 1024) : 1024;
  const fs = statfsSync(stateDir);
  const diskGb = Math.floor((fs.blocks * fs.bsize) / 2 ** 30);
  return { vcpus, memoryMb, diskGb };
}

/** `capacity=vcpus,memoryMb,diskGb` (e.g. `8,16384,200`) overrides what the host reports. */
export function parseCapacity(value: string | undefined, fallback: Resources): Resources {
  if (!value) return fallback;
  const parts = value.split(/[,:x]/).map((s) => Number(s.trim()));
  if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new Error(`driver option capacity=${value}: expected vcpus,memoryMb,diskGb`);
  }
  return { vcpus: parts[0]!, memoryMb: parts[1]!, diskGb: parts[2]! };
}
