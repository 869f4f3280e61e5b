import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { migrate } from '../eventstore/index.js';
import { rebuildProjection, startProjections, waitForProjections } from '../projections/index.js';
import { checkpointMigrations, readCheckpoint, writeCheckpoint } from '../projections/checkpoints.js';
import { meterMigrations } from '../projections/meterTables.js';
import { projections } from '../projections/registry.js';
import { testRuntime } from './support/projectionFixtures.js';
import { dumpUsage, usageTimeline } from './support/usageTimeline.js';

const t = (hhmm: string) => `2026-11-30T${hhmm}:00.000Z`;
const UPGRADE = 'projections/usage/002-subjects';

describe('upgrading from a consumer that metered instances only', () => {
  it('the 002 migration starts the consumer over: a volume from before the upgrade gets its records, the instance the same ones', async () => {
    const rt = await testRuntime('metering_upgrade');
    try {
      // The schema as it was before: every migration but this one.
      await migrate(rt.db, [...checkpointMigrations, ...projections.flatMap((p) => p.migrations).filter((m) => m.id !== UPGRADE), ...meterMigrations]);
      const timeline = usageTimeline(rt);
      const projectId = await timeline.project();
      const instanceId = await timeline.boot(projectId, t('10:20'));
      const volumeId = await timeline.volume(projectId, 20, t('10:30'));
      await timeline.delete(instanceId, t('11:10'));
      await timeline.deleteVolume(volumeId, t('12:30'));

      // The old consumer had applied all of it and knew nothing of volumes: its checkpoint is at the head,
      // and its rows are whatever it wrote (here one stray record and one open interval, old-style).
      const [head] = await rt.db.query<{ transaction_id: string; position: string }>(
        'SELECT transaction_id::text AS transaction_id, position::text AS position FROM events ORDER BY transaction_id DESC, position DESC LIMIT 1',
      );
      await readCheckpoint(rt.db, 'usage');
      await writeCheckpoint(rt.db, 'usage', { transactionId: head!.transaction_id, position: head!.position });
      expect((await readCheckpoint(rt.db, 'usage')).checkpoint).toMatchObject({ transactionId: head!.transaction_id, position: head!.position });
      const stray = randomUUID();
      await rt.db.query(
        `INSERT INTO usage_records (resource_id, usage_type, start_at, end_at, resource_type, project_id, size, flavor_id, quantity, unit)
         VALUES ($1, 'RUNNING_VM', $2, $3, 'instance', $4, 1, NULL, 1, 'HOURS')`,
        [stray, t('08:00'), t('09:00'), projectId],
      );
      await rt.db.query(`INSERT INTO usage_open (resource_id, usage_type, resource_type, project_id, size, flavor_id, since) VALUES ($1, 'RUNNING_VM', 'instance', $2, 1, NULL, $3)`, [
        stray, projectId, t('09:00'),
      ]);
      const generation = (await readCheckpoint(rt.db, 'usage')).generation;

      const runner = await startProjections(rt, ['usage']);
      try {
        await waitForProjections(rt, undefined, { names: ['usage'], timeoutMs: 60_000 });
      } finally {
        await runner.stop();
      }
      expect((await readCheckpoint(rt.db, 'usage')).generation).toBe(generation + 1);
      const records = await rt.db.query<{ resource_id: string; usage_type: string; start_at: Date; end_at: Date }>(
        'SELECT resource_id, usage_type, start_at, end_at FROM usage_records ORDER BY resource_id = $1 DESC, usage_type, start_at',
        [volumeId],
      );
      const span = (r: (typeof records)[number]) => [r.usage_type, r.start_at.toISOString().slice(11, 16), r.end_at.toISOString().slice(11, 16)];
      expect(records.filter((r) => r.resource_id === volumeId).map(span)).toEqual([
        ['VOLUME', '10:30', '11:00'],
        ['VOLUME', '11:00', '12:00'],
        ['VOLUME', '12:00', '12:30'],
      ]);
      expect(records.filter((r) => r.resource_id === instanceId).map(span)).toEqual([
        ['ALLOCATED_VM', '10:20', '11:00'],
        ['ALLOCATED_VM', '11:00', '11:10'],
        ['RUNNING_VM', '10:20', '11:00'],
        ['RUNNING_VM', '11:00', '11:10'],
      ]);
      expect(records.some((r) => r.resource_id === stray)).toBe(false);
      const upgraded = await dumpUsage(rt);
      expect(upgraded.open).toEqual([]);
      await rebuildProjection(rt, 'usage');
      expect(await dumpUsage(rt)).toEqual(upgraded);
    } finally {
      await rt.close();
    }
  }, 180_000);
});
