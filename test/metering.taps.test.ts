import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTapCounters } from '../hostagent/drivers/qemu/vmSamples.js';
import { tapNameOf } from '../hostagent/network.js';

/** The qemu pollster's network half: a VM's tap counters from sysfs, tolerant of taps that are not there. */
describe('tap counters for the qemu pollster', () => {
  const sysfs = mkdtempSync(join(tmpdir(), 'stratus-sysfs-'));
  afterAll(() => rmSync(sysfs, { recursive: true, force: true }));
  const tap = (portId: string, counters: Record<string, number>) => {
    const name = tapNameOf(portId);
    mkdirSync(join(sysfs, name, 'statistics'), { recursive: true });
    for (const [counter, value] of Object.entries(counters)) writeFileSync(join(sysfs, name, 'statistics', counter), `${value}\n`);
    return name;
  };

  it("sums a VM's taps from the guest's side (a tap's tx is what reached the guest) and skips a tap that is not there", async () => {
    const a = tap(randomUUID(), { rx_bytes: 1000, tx_bytes: 5000, rx_packets: 10, tx_packets: 40 });
    const b = tap(randomUUID(), { rx_bytes: 1, tx_bytes: 2, rx_packets: 3, tx_packets: 4 });
    const missing = tapNameOf(randomUUID());
    expect(await readTapCounters([a, missing, b], sysfs)).toEqual({ incomingBytes: 5002, outgoingBytes: 1001, incomingPackets: 44, outgoingPackets: 13 });
  });

  it('no tap at all (no port plugged, or no data plane yet): no counters and no error', async () => {
    expect(await readTapCounters([], sysfs)).toBeUndefined();
    expect(await readTapCounters([tapNameOf(randomUUID())], sysfs)).toBeUndefined();
    // A tap being torn down mid-reading (some counters gone) counts as not there.
    const half = tap(randomUUID(), { rx_bytes: 7, tx_bytes: 8 });
    expect(await readTapCounters([half], sysfs)).toBeUndefined();
  });

  it("reads a real device's counters from the kernel's /sys/class/net", async () => {
    const read = (c: string) => Number(readFileSync(`/sys/class/net/lo/statistics/${c}`, 'utf8'));
    const before = { tx: read('tx_bytes'), rx: read('rx_bytes') };
    const counters = (await readTapCounters(['lo']))!;
    // Loopback's counters only grow; the reading lies between two direct reads of the files.
    expect(counters.incomingBytes).toBeGreaterThanOrEqual(before.tx);
    expect(counters.outgoingBytes).toBeGreaterThanOrEqual(before.rx);
    expect(counters.incomingBytes).toBeLessThanOrEqual(read('tx_bytes'));
    expect(counters.outgoingBytes).toBeLessThanOrEqual(read('rx_bytes'));
  });
});
