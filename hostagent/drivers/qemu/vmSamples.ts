import { readFile } from 'node:fs/promises';
import type { VmSample } from '../../driver.js';
import type { QmpClient } from './qmp.js';

// Linux reports /proc/<pid>/stat times in clock ticks of USER_HZ, which is 100 on every architecture
// QEMU hosts run (the kernel fixes USER_HZ for the ABI, whatever CONFIG_HZ is).
const NS_PER_TICK = 10_000_000;

/** user + system CPU time of a process, in ns: fields 14 and 15 of /proc/<pid>/stat, read after the `)` that ends its name. */
export async function processCpuNs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) * NS_PER_TICK;
}

/** Resident memory of a process in MB (VmRSS of /proc/<pid>/status). */
export async function processRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  return kb ? Number(kb) / 1024 : 0;
}

interface BlockStats {
  stats?: { rd_bytes?: number; wr_bytes?: number };
}

/** One running QEMU's counters: CPU and memory from /proc, disk bytes summed over `query-blockstats`. */
export async function sampleQemuVm(
  vm: { name: string; labels: Record<string, string>; vcpus: number; pid: number },
  qmp: QmpClient,
): Promise<VmSample> {
  const [cpuNs, memoryMb, blocks] = await Promise.all([
    processCpuNs(vm.pid),
    processRssMb(vm.pid),
    qmp.execute<BlockStats[]>('query-blockstats', undefined, 5000).catch((): BlockStats[] => []),
  ]);
  return {
    name: vm.name,
    labels: vm.labels,
    at: new Date().toISOString(),
    vcpus: vm.vcpus,
    cpuNs,
    memoryMb,
    diskReadBytes: blocks.reduce((s, b) => s + (b.stats?.rd_bytes ?? 0), 0),
    diskWriteBytes: blocks.reduce((s, b) => s + (b.stats?.wr_bytes ?? 0), 0),
  };
}
