import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hostStream } from '../domain/events.js';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { keepMeterPollers, meterPollerId } from '../server/meteringClock.js';
import type { Runtime } from '../server/runtime.js';
import { domainWriter, testRuntime } from './support/projectionFixtures.js';

/**
 * keepMeterPollers follows host changes, and every capacity claim is one: a change of a host it
 * already polls must cost nothing (no query of the hosts, no Temporal call); only a new host starts one.
 * No worker polls this runtime's queue, so the pollsters it starts only sit in Temporal until terminated.
 */
describe('keepMeterPollers reacts to hosts added, not to every host change', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  const started: string[] = [];

  beforeAll(async () => {
    rt = await testRuntime('metering_pollers');
    runner = await startProjections(rt);
    await runner.caughtUp;
  });
  afterAll(async () => {
    for (const id of started) await rt.temporal.workflow.getHandle(id).terminate().catch(() => {});
    await runner?.stop();
    await rt?.close();
  });

  it('claims on known hosts start nothing and read no hosts; a host registered later gets its pollster, once', async () => {
    const write = domainWriter(rt);
    const hosts = [await write.host(), await write.host(), await write.host()];
    await waitForProjections(rt);
    const start = vi.spyOn(rt.temporal.workflow, 'start');
    const query = vi.spyOn(rt.db, 'query');
    const stop = await keepMeterPollers(rt, 60_000);
    try {
      expect(start.mock.calls.map((c) => (c[1] as { workflowId: string }).workflowId).sort()).toEqual(hosts.map(meterPollerId).sort());
      started.push(...hosts.map(meterPollerId));
      const hostReads = () => query.mock.calls.filter((c) => String(c[0]).includes('rm_hosts')).length;
      const readsAfterStart = hostReads();
      start.mockClear();

      // 60 claims and releases on the known hosts: 60 host changes notified through PostgreSQL.
      for (let i = 0; i < 30; i++) {
        const hostId = hosts[i % 3]!;
        const instanceId = randomUUID();
        await rt.store.append(hostStream(hostId), [
          { id: randomUUID(), type: 'HostCapacityClaimed', data: { instanceId, operationId: randomUUID(), resources: { vcpus: 1, memoryMb: 64, diskGb: 1 } }, metadata: { actor: 'test' } },
          { id: randomUUID(), type: 'HostCapacityReleased', data: { instanceId }, metadata: { actor: 'test' } },
        ], { expectedVersion: 'any' });
      }
      // Then a new host. Notifications arrive in commit order, so once its pollster starts, every claim before it was seen.
      const added = await write.host();
      await expect.poll(() => start.mock.calls.length, { timeout: 60_000, interval: 50 }).toBeGreaterThan(0);
      started.push(meterPollerId(added));
      expect(start.mock.calls.map((c) => (c[1] as { workflowId: string }).workflowId)).toEqual([meterPollerId(added)]);
      expect(hostReads()).toBe(readsAfterStart);
      expect((await rt.temporal.workflow.getHandle(meterPollerId(added)).describe()).status.name).toBe('RUNNING');

      // Its own later changes start nothing either: after a claim on it, the next new host is the only start.
      await rt.store.append(hostStream(added), [
        { id: randomUUID(), type: 'HostCapacityClaimed', data: { instanceId: randomUUID(), operationId: randomUUID(), resources: { vcpus: 1, memoryMb: 64, diskGb: 1 } }, metadata: { actor: 'test' } },
      ], { expectedVersion: 'any' });
      const another = await write.host();
      await expect.poll(() => start.mock.calls.length, { timeout: 60_000, interval: 50 }).toBeGreaterThan(1);
      started.push(meterPollerId(another));
      expect(start.mock.calls.map((c) => (c[1] as { workflowId: string }).workflowId)).toEqual([meterPollerId(added), meterPollerId(another)]);
      expect(hostReads()).toBe(readsAfterStart);
    } finally {
      await stop();
      start.mockRestore();
      query.mockRestore();
    }
  }, 180_000);
});
