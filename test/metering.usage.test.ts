import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuildProjection, startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { usageFor } from '../schema/usageReads.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { testRuntime } from './support/projectionFixtures.js';
import { dumpUsage, FLAVOR, usageTimeline } from './support/usageTimeline.js';

const t = (hhmm: string, day = '2026-11-30') => `${day}T${hhmm}:00.000Z`;
const admin = { tokenId: 'test-admin', projectId: randomUUID(), role: 'ADMIN' as const };
const member = (projectId: string) => ({ tokenId: 'test-member', projectId, role: 'MEMBER' as const });
const hours = (minutes: number) => minutes / 60;

describe('the metering consumer folds lifecycle events into hourly usage records', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let timeline: ReturnType<typeof usageTimeline>;

  beforeAll(async () => {
    rt = await testRuntime('metering_usage');
    timeline = usageTimeline(rt);
    runner = await startProjections(rt);
    await runner.caughtUp;
  });
  afterAll(async () => {
    await runner?.stop();
    await rt?.close();
  });

  const recordsOf = async (resourceId: string) =>
    (
      await rt.db.query<{ usage_type: string; start_at: Date; end_at: Date; quantity: number; unit: string }>(
        'SELECT usage_type, start_at, end_at, quantity, unit FROM usage_records WHERE resource_id = $1 ORDER BY usage_type, start_at',
        [resourceId],
      )
    ).map((r) => [r.usage_type, r.start_at.toISOString().slice(11, 16), r.end_at.toISOString().slice(11, 16), r.quantity, r.unit]);

  it('boot 10:20, stop 11:05, start 11:40, delete 13:10: the exact records per clock hour, and the same after rebuildProjection', async () => {
    const projectId = await timeline.project();
    const id = await timeline.boot(projectId, t('10:20'));
    await timeline.stop(id, t('11:05'));
    await timeline.start(id, t('11:40'));
    await timeline.delete(id, t('13:10'));
    await waitForProjections(rt);

    expect(await recordsOf(id)).toEqual([
      ['ALLOCATED_VM', '10:20', '11:00', hours(40), 'HOURS'],
      ['ALLOCATED_VM', '11:00', '12:00', 1, 'HOURS'],
      ['ALLOCATED_VM', '12:00', '13:00', 1, 'HOURS'],
      ['ALLOCATED_VM', '13:00', '13:10', hours(10), 'HOURS'],
      ['RUNNING_VM', '10:20', '11:00', hours(40), 'HOURS'],
      ['RUNNING_VM', '11:00', '11:05', hours(5), 'HOURS'],
      ['RUNNING_VM', '11:40', '12:00', hours(20), 'HOURS'],
      ['RUNNING_VM', '12:00', '13:00', 1, 'HOURS'],
      ['RUNNING_VM', '13:00', '13:10', hours(10), 'HOURS'],
    ]);
    const [open] = await rt.db.query('SELECT count(*)::int AS n FROM usage_open WHERE resource_id = $1', [id]);
    expect(open).toEqual({ n: 0 });

    const report = (await usageFor(rt, member(projectId), { from: t('00:00'), to: t('00:00', '2026-12-01') }))!;
    expect(report.totals.map((x) => [x.usageType, x.quantity, x.unit])).toEqual([
      ['ALLOCATED_VM', expect.closeTo(hours(170), 12), 'HOURS'],
      ['RUNNING_VM', expect.closeTo(hours(135), 12), 'HOURS'],
    ]);
    // A window cuts records at its edges, to the minute.
    const window = (await usageFor(rt, member(projectId), { from: t('10:30'), to: t('11:50') }))!;
    expect(window.totals.find((x) => x.usageType === 'RUNNING_VM')!.quantity).toBeCloseTo(hours(35 + 10), 12);

    const before = await dumpUsage(rt);
    const rebuilt = await rebuildProjection(rt, 'usage');
    expect(rebuilt.events).toBeGreaterThan(0);
    expect(await dumpUsage(rt)).toEqual(before);
  });

  it('a clock tick closes the hours of an instance still running, and the records are the ones its own next event would have made', async () => {
    const projectId = await timeline.project();
    const ticked = await timeline.boot(projectId, t('10:20', '2026-11-29'));
    // A tick closes every interval older than its hour, so the twin without one lives after it.
    const unticked = await timeline.boot(projectId, t('10:20', '2026-12-05'));
    await timeline.tick(t('12:01', '2026-11-29'));
    await waitForProjections(rt);
    expect(await recordsOf(ticked)).toEqual([
      ['ALLOCATED_VM', '10:20', '11:00', hours(40), 'HOURS'],
      ['ALLOCATED_VM', '11:00', '12:00', 1, 'HOURS'],
      ['RUNNING_VM', '10:20', '11:00', hours(40), 'HOURS'],
      ['RUNNING_VM', '11:00', '12:00', 1, 'HOURS'],
    ]);
    const [open] = await rt.db.query<{ since: Date }>('SELECT since FROM usage_open WHERE resource_id = $1 AND usage_type = $2', [ticked, 'RUNNING_VM']);
    expect(open!.since.toISOString()).toBe(t('12:00', '2026-11-29'));

    await timeline.stop(ticked, t('12:30', '2026-11-29'));
    await timeline.stop(unticked, t('12:30', '2026-12-05'));
    await waitForProjections(rt);
    // RUNNING_VM is closed on both now; ALLOCATED_VM runs on (the ticked one has its first hours closed).
    const running = async (id: string) => (await recordsOf(id)).filter((r) => r[0] === 'RUNNING_VM');
    expect(await running(ticked)).toEqual(await running(unticked));
    expect((await running(ticked)).map((r) => r.slice(1, 3))).toEqual([['10:20', '11:00'], ['11:00', '12:00'], ['12:00', '12:30']]);
  });

  it('a price applies from its effective time on, never to usage before it, and setPrice never reprices the past', async () => {
    const projectId = await timeline.project();
    const id = await timeline.boot(projectId, t('10:20', '2026-11-27'));
    await timeline.delete(id, t('13:10', '2026-11-27'));
    await timeline.price('RUNNING_VM', 0.1, t('00:00', '2026-11-27'));
    await timeline.price('RUNNING_VM', 0.2, t('12:30', '2026-11-27'));
    await timeline.price('RUNNING_VM', 0.5, t('00:00', '2026-11-27'), FLAVOR.id === id ? null : randomUUID());
    await waitForProjections(rt);
    const window = { from: t('00:00', '2026-11-27'), to: t('00:00', '2026-11-28') };
    const report = (await usageFor(rt, member(projectId), window))!;
    const running = report.totals.find((x) => x.usageType === 'RUNNING_VM')!;
    // 10:20-12:30 at 0.10, 12:30-13:10 at 0.20; the other flavor's price does not touch this one.
    expect(running.cost).toBeCloseTo(hours(130) * 0.1 + hours(40) * 0.2, 12);
    expect(report.totals.find((x) => x.usageType === 'ALLOCATED_VM')!.cost).toBe(0);
    expect(report.cost).toBeCloseTo(running.cost, 12);
    expect(report.currency).toBe('EUR');
    const cut = report.records.find((r) => r.usageType === 'RUNNING_VM' && r.start === t('12:00', '2026-11-27'))!;
    expect(cut.rate).toBeCloseTo(0.15, 12);

    const { price } = await commands.setPrice(rt, admin, { usageType: 'RUNNING_VM', unitPrice: 99, currency: 'EUR' });
    expect(Date.parse(price.effectiveFrom)).toBeGreaterThan(Date.parse(t('13:10', '2026-11-27')));
    await waitForProjections(rt);
    expect((await usageFor(rt, member(projectId), window))!.cost).toBeCloseTo(report.cost, 12);
  });

  it('setPrice refuses bad input and a second currency, and changes nothing', async () => {
    const count = async () => (await rt.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE stream_id = 'pricesheet-default'`))[0]!.n;
    const before = await count();
    await expect(commands.setPrice(rt, admin, { usageType: 'RUNNING_VM', unitPrice: 1, currency: 'USD' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(commands.setPrice(rt, member(randomUUID()), { usageType: 'RUNNING_VM', unitPrice: 1 })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(commands.setPrice(rt, admin, { usageType: 'RUNNING_VM', flavorId: randomUUID(), unitPrice: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await count()).toBe(before);
  });

  it('a member reads only its own project usage: another project is null, like one that does not exist', async () => {
    const mine = await timeline.project();
    const theirs = await timeline.project();
    await timeline.delete(await timeline.boot(theirs, t('09:00', '2026-11-26')), t('10:00', '2026-11-26'));
    await waitForProjections(rt);
    const window = { from: t('00:00', '2026-11-26'), to: t('00:00', '2026-11-27') };
    expect(await usageFor(rt, member(mine), { ...window, projectId: theirs })).toBeNull();
    expect(await usageFor(rt, admin, { ...window, projectId: randomUUID() })).toBeNull();
    expect((await usageFor(rt, member(mine), window))!.records).toEqual([]);
    expect((await usageFor(rt, admin, { ...window, projectId: theirs }))!.records.length).toBeGreaterThan(0);
  });
});
