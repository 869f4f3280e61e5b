import { readFile } from 'node:fs/promises';
import type { NetCounters, VmSample } from '../../driver.js';
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

/** One statistics counter of a network device, or undefined when the device (or the counter) is not there. */
async function netStatistic(sysfs: string, device: string, counter: string): Promise<number | undefined> {
  try {
    const value = Number((await readFile(`${sysfs}/${device}/statistics/${counter}`, 'utf8')).trim());
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The counters of a VM's taps, summed, from the guest's side (libvirt's and Ceilometer's convention: a
 * tap's tx is what reached the guest, its rx what the guest sent). A tap that is not there (the port
 * not plugged yet, or no data plane on this host) adds nothing and is no error; none there: undefined.
 */
export async function readTapCounters(taps: readonly string[], sysfs = '/sys/class/net'): Promise<NetCounters | undefined> {
  let total: NetCounters | undefined;
  for (const tap of taps) {
    const [rxBytes, txBytes, rxPackets, txPackets] = await Promise.all(
      ['rx_bytes', 'tx_bytes', 'rx_packets', 'tx_packets'].map((c) => netStatistic(sysfs, tap, c)),
    );
    if (rxBytes === undefined || txBytes === undefined || rxPackets === undefined || txPackets === undefined) continue;
    total ??= { incomingBytes: 0, outgoingBytes: 0, incomingPackets: 0, outgoingPackets: 0 };
    total.incomingBytes += txBytes;
    total.outgoingBytes += rxBytes;
    total.incomingPackets += txPackets;
    total.outgoingPackets += rxPackets;
  }
  return total;
}

interface BlockStats {
  stats?: { rd_bytes?: number; wr_bytes?: number };
}

/**
 * One running QEMU's counters: CPU and memory from /proc, disk bytes summed over `query-blockstats`,
 * network from the taps of its plugged ports (`taps`, named by `tapNameOf`).
 */
export async function sampleQemuVm(
  vm: { name: string; labels: Record<string, string>; vcpus: number; pid: number },
  qmp: QmpClient,
  taps: readonly string[] = [],
): Promise<VmSample> {
  const [cpuNs, memoryMb, blocks, network] = await Promise.all([
    processCpuNs(vm.pid),
    processRssMb(vm.pid),
    // No catch: counters read as zeros would look like a reset to every rate computed from them, so a
    // VM whose QMP does not answer drops out of this round's samples instead (the driver skips it).
    qmp.execute<BlockStats[]>('query-blockstats', undefined, 5000),
    readTapCounters(taps),
  ]);
  return {
    ...(network ? { network } : {}),
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
