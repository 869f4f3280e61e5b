import { z } from 'zod';
import { Id, Timestamp } from './scalars.js';

/** Ceilometer's meter names (CONTRACT.md `Sample.meter`) and their units. */
export const MeterName = z.enum([
  'cpu',
  'cpu_util',
  'memory.usage',
  'disk.read.bytes',
  'disk.write.bytes',
  'network.incoming.bytes',
  'network.outgoing.bytes',
  'network.incoming.packets',
  'network.outgoing.packets',
]);
export type MeterName = z.infer<typeof MeterName>;

export const meterUnits: Record<MeterName, string> = {
  cpu: 'ns',
  cpu_util: '%',
  'memory.usage': 'MB',
  'disk.read.bytes': 'B',
  'disk.write.bytes': 'B',
  'network.incoming.bytes': 'B',
  'network.outgoing.bytes': 'B',
  'network.incoming.packets': 'packet',
  'network.outgoing.packets': 'packet',
};

export const Sample = z.object({ meter: MeterName, resourceId: Id, timestamp: Timestamp, value: z.number(), unit: z.string() });
export type Sample = z.infer<typeof Sample>;

/** CONTRACT.md `meters(resourceId, meter, from, to)`. */
export const MetersQuery = z
  .object({ resourceId: Id, meter: MeterName, from: Timestamp, to: Timestamp })
  .refine((q) => Date.parse(q.from) < Date.parse(q.to), { message: '`to` must be after `from`', path: ['to'] });
export type MetersQuery = z.infer<typeof MetersQuery>;

/** What a pollster read off one VM (hostagent `VmSample`), as far as the samples depend on it. */
export interface Reading {
  at: string;
  vcpus: number;
  cpuNs: number;
  memoryMb: number;
  diskReadBytes: number;
  diskWriteBytes: number;
  /** Summed over the VM's ports, the guest's side; absent when it has none (then no network samples). */
  network?: { incomingBytes: number; outgoingBytes: number; incomingPackets: number; outgoingPackets: number } | undefined;
}

/**
 * The samples one reading gives, with `cpu_util` derived from the CPU time used since the previous
 * reading over the wall time between them and the vCPUs (Ceilometer's rate_of_change transformer). No
 * previous reading, or a counter that went backwards (the VM's process restarted): no cpu_util this time.
 */
export function samplesOf(resourceId: string, reading: Reading, previous?: Pick<Reading, 'at' | 'cpuNs'>): Sample[] {
  const at = new Date(Date.parse(reading.at)).toISOString();
  const sample = (meter: MeterName, value: number): Sample => ({ meter, resourceId, timestamp: at, value, unit: meterUnits[meter] });
  const samples = [
    sample('cpu', reading.cpuNs),
    sample('memory.usage', reading.memoryMb),
    sample('disk.read.bytes', reading.diskReadBytes),
    sample('disk.write.bytes', reading.diskWriteBytes),
  ];
  if (reading.network) {
    samples.push(
      sample('network.incoming.bytes', reading.network.incomingBytes),
      sample('network.outgoing.bytes', reading.network.outgoingBytes),
      sample('network.incoming.packets', reading.network.incomingPackets),
      sample('network.outgoing.packets', reading.network.outgoingPackets),
    );
  }
  if (previous) {
    const wallNs = (Date.parse(reading.at) - Date.parse(previous.at)) * 1e6;
    const usedNs = reading.cpuNs - previous.cpuNs;
    if (wallNs > 0 && usedNs >= 0) samples.push(sample('cpu_util', (100 * usedNs) / (wallNs * Math.max(1, reading.vcpus))));
  }
  return samples;
}
