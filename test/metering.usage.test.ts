import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuildProjection, startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { usageFor } from '../schema/usageReads.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { testRuntime } from './support/projectionFixtures.js';
import { dumpUsage, usageTimeline } from './support/usageTimeline.js';

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

  it('boot 10:20, stop 11:05, start 11:40, delete 13:10 and a 20 GB volume 10:30-12:30: the exact records and totals to the minute, the same after rebuildProjection', async () => {
    const projectId = await timeline.project();
    const id = await timeline.boot(projectId, t('10:20'));
    const volumeId = await timeline.volume(projectId, 20, t('10:30'));
    await timeline.stop(id, t('11:05'));
    await timeline.start(id, t('11:40'));
    await timeline.deleteVolume(volumeId, t('12:30'));
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
    expect(await recordsOf(volumeId)).toEqual([
      ['VOLUME', '10:30', '11:00', 20 * hours(30), 'GB_HOURS'],
      ['VOLUME', '11:00', '12:00', 20, 'GB_HOURS'],
      ['VOLUME', '12:00', '12:30', 20 * hours(30), 'GB_HOURS'],
    ]);
    const open = await rt.db.query('SELECT count(*)::int AS n FROM usage_open WHERE resource_id = ANY($1::text[])', [[id, volumeId]]);
    expect(open).toEqual([{ n: 0 }]);

    const report = (await usageFor(rt, member(projectId), { from: t('00:00'), to: t('00:00', '2026-12-01') }))!;
    expect(report.totals.map((x) => [x.usageType, x.quantity, x.unit])).toEqual([
      ['ALLOCATED_VM', expect.closeTo(hours(170), 12), 'HOURS'],
      ['RUNNING_VM', expect.closeTo(hours(135), 12), 'HOURS'],
      ['VOLUME', expect.closeTo(20 * hours(120), 12), 'GB_HOURS'],
    ]);
    expect(report.records.filter((r) => r.resourceId === volumeId).map((r) => [r.resourceType, r.projectId])).toEqual([
      ['volume', projectId],
      ['volume', projectId],
      ['volume', projectId],
    ]);
    // A window cuts records at its edges, to the minute.
    const window = (await usageFor(rt, member(projectId), { from: t('10:30'), to: t('11:50') }))!;
    expect(window.totals.find((x) => x.usageType === 'RUNNING_VM')!.quantity).toBeCloseTo(hours(35 + 10), 12);
    expect(window.totals.find((x) => x.usageType === 'VOLUME')!.quantity).toBeCloseTo(20 * hours(80), 12);

    const before = await dumpUsage(rt);
    const rebuilt = await rebuildProjection(rt, 'usage');
    expect(rebuilt.events).toBeGreaterThan(0);
    expect(await dumpUsage(rt)).toEqual(before);
  });

  it('volume snapshots, uploaded images and floating addresses: GB-hours and hours from their own events, each a resource of its own', async () => {
    const day = '2026-11-25';
    const projectId = await timeline.project();
    const other = await timeline.project();
    const volumeId = await timeline.volume(projectId, 8, t('09:10', day));
    const first = await timeline.snapshotVolume(volumeId, t('09:40', day));
    const second = await timeline.snapshotVolume(volumeId, t('10:15', day));
    // A failed create holds no bytes: no record at all.
    const failed = await timeline.failedVolume(projectId, 50, t('09:00', day));
    // The volume's delete takes its snapshots with it.
    await timeline.deleteVolume(volumeId, t('11:30', day));

    const imageId = await timeline.image(projectId, 3 * 1024 ** 3, t('09:50', day), t('10:20', day));
    await timeline.deleteImage(imageId, t('11:05', day));

    const external = await timeline.externalNetwork(t('08:00', day));
    const mine = await external.allocate(projectId, t('09:45', day));
    const theirs = await external.allocate(other, t('10:00', day));
    // Associating does not change what an allocation costs.
    const instanceId = await timeline.boot(projectId, t('09:00', day));
    await external.associate(mine.addressId, instanceId, t('10:30', day));
    await external.release(mine, t('11:15', day));
    await external.release(theirs, t('10:40', day));
    await waitForProjections(rt);

    expect(await recordsOf(volumeId)).toEqual([
      ['VOLUME', '09:10', '10:00', 8 * hours(50), 'GB_HOURS'],
      ['VOLUME', '10:00', '11:00', 8, 'GB_HOURS'],
      ['VOLUME', '11:00', '11:30', 8 * hours(30), 'GB_HOURS'],
    ]);
    expect(await recordsOf(first)).toEqual([
      ['VOLUME_SNAPSHOT', '09:40', '10:00', 8 * hours(20), 'GB_HOURS'],
      ['VOLUME_SNAPSHOT', '10:00', '11:00', 8, 'GB_HOURS'],
      ['VOLUME_SNAPSHOT', '11:00', '11:30', 8 * hours(30), 'GB_HOURS'],
    ]);
    expect(await recordsOf(second)).toEqual([
      ['VOLUME_SNAPSHOT', '10:15', '11:00', 8 * hours(45), 'GB_HOURS'],
      ['VOLUME_SNAPSHOT', '11:00', '11:30', 8 * hours(30), 'GB_HOURS'],
    ]);
    expect(await recordsOf(failed)).toEqual([]);
    expect(await recordsOf(imageId)).toEqual([
      ['IMAGE', '10:20', '11:00', 3 * hours(40), 'GB_HOURS'],
      ['IMAGE', '11:00', '11:05', 3 * hours(5), 'GB_HOURS'],
    ]);
    expect(await recordsOf(mine.addressId)).toEqual([
      ['FLOATING_IP', '09:45', '10:00', hours(15), 'HOURS'],
      ['FLOATING_IP', '10:00', '11:00', 1, 'HOURS'],
      ['FLOATING_IP', '11:00', '11:15', hours(15), 'HOURS'],
    ]);
    expect(await recordsOf(theirs.addressId)).toEqual([['FLOATING_IP', '10:00', '10:40', hours(40), 'HOURS']]);
    expect(await rt.db.query('SELECT count(*)::int AS n FROM usage_open WHERE subject_id = ANY($1::text[])', [[volumeId, imageId, external.networkId]])).toEqual([{ n: 0 }]);

    const window = { from: t('00:00', day), to: t('00:00', '2026-11-26') };
    const report = (await usageFor(rt, member(projectId), window))!;
    const totals = Object.fromEntries(report.totals.map((x) => [x.usageType, [x.quantity, x.unit]]));
    expect(totals.VOLUME).toEqual([expect.closeTo(8 * hours(140), 12), 'GB_HOURS']);
    expect(totals.VOLUME_SNAPSHOT).toEqual([expect.closeTo(8 * hours(110 + 75), 12), 'GB_HOURS']);
    expect(totals.IMAGE).toEqual([expect.closeTo(3 * hours(45), 12), 'GB_HOURS']);
    expect(totals.FLOATING_IP).toEqual([expect.closeTo(hours(90), 12), 'HOURS']);
    // A tenant network's addresses are FIXED, its instances': nothing of it is followed or billed.
    const tenant = await timeline.tenantNetwork(projectId, t('08:00', day));
    await tenant.allocateFixed(instanceId, t('09:00', day));
    await waitForProjections(rt);
    expect(await rt.db.query('SELECT id FROM usage_subjects WHERE id = $1', [tenant.networkId])).toEqual([]);
    expect((await rt.db.query<{ id: string }>('SELECT id FROM usage_subjects WHERE id = $1', [external.networkId])).length).toBe(1);
    const types = Object.fromEntries(report.records.map((r) => [r.resourceId, r.resourceType]));
    expect([types[first], types[imageId], types[mine.addressId]]).toEqual(['volumeSnapshot', 'image', 'floatingIp']);
    // The other project's address is its own, never this project's.
    expect(report.records.some((r) => r.resourceId === theirs.addressId)).toBe(false);
    const theirReport = (await usageFor(rt, member(other), window))!;
    expect(theirReport.totals.map((x) => [x.usageType, x.quantity])).toEqual([['FLOATING_IP', expect.closeTo(hours(40), 12)]]);

    const before = await dumpUsage(rt);
    await rebuildProjection(rt, 'usage');
    expect(await dumpUsage(rt)).toEqual(before);
  });

  it('a tick closes the hours of a volume, a snapshot, an image and an address still held, like those of a running instance', async () => {
    const day = '2026-11-24';
    const projectId = await timeline.project();
    const volumeId = await timeline.volume(projectId, 10, t('10:20', day));
    const snapshotId = await timeline.snapshotVolume(volumeId, t('10:40', day));
    const imageId = await timeline.image(projectId, 1024 ** 3, t('10:30', day), t('10:30', day));
    const external = await timeline.externalNetwork(t('08:00', day));
    const ip = await external.allocate(projectId, t('10:50', day));
    await timeline.tick(t('12:01', day));
    await waitForProjections(rt);
    const spans = async (id: string) => (await recordsOf(id)).map((r) => [r[0], r[1], r[2]]);
    expect(await spans(volumeId)).toEqual([['VOLUME', '10:20', '11:00'], ['VOLUME', '11:00', '12:00']]);
    expect(await spans(snapshotId)).toEqual([['VOLUME_SNAPSHOT', '10:40', '11:00'], ['VOLUME_SNAPSHOT', '11:00', '12:00']]);
    expect(await spans(imageId)).toEqual([['IMAGE', '10:30', '11:00'], ['IMAGE', '11:00', '12:00']]);
    expect(await spans(ip.addressId)).toEqual([['FLOATING_IP', '10:50', '11:00'], ['FLOATING_IP', '11:00', '12:00']]);
    const open = await rt.db.query<{ resource_id: string; since: Date }>('SELECT resource_id, since FROM usage_open WHERE resource_id = ANY($1::text[])', [
      [volumeId, snapshotId, imageId, ip.addressId],
    ]);
    expect(open.map((o) => o.since.toISOString())).toEqual(Array(4).fill(t('12:00', day)));
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
    await timeline.price('RUNNING_VM', 0.5, t('00:00', '2026-11-27'), randomUUID());
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

  it("a price set for an instance's own flavor beats the price for every flavor, from its own effective time", async () => {
    const day = '2026-11-26';
    const projectId = await timeline.project();
    const big = { id: randomUUID(), vcpus: 4, memoryMb: 4096, diskGb: 20 };
    const small = await timeline.boot(projectId, t('10:00', day));
    const large = await timeline.boot(projectId, t('10:00', day), big);
    await timeline.delete(small, t('12:00', day));
    await timeline.delete(large, t('12:00', day));
    await timeline.price('RUNNING_VM', 0.1, t('00:00', day));
    // The flavor's own price starts at 11:00 and is older than the every-flavor price set at 11:30:
    // it still wins for that flavor from 11:00 on, and never touches the other flavor.
    await timeline.price('RUNNING_VM', 0.4, t('11:00', day), big.id);
    await timeline.price('RUNNING_VM', 0.2, t('11:30', day));
    await waitForProjections(rt);
    const report = (await usageFor(rt, member(projectId), { from: t('00:00', day), to: t('00:00', '2026-11-27') }))!;
    const running = (id: string) => report.records.filter((r) => r.resourceId === id && r.usageType === 'RUNNING_VM');
    const cost = (id: string) => running(id).reduce((sum, r) => sum + r.cost, 0);
    // Records are cut at hours (10:00-11:00, 11:00-12:00); a price change inside one costs it in pieces.
    expect(running(large).map((r) => [r.start, r.rate])).toEqual([
      [t('10:00', day), 0.1],
      [t('11:00', day), 0.4],
    ]);
    expect(cost(large)).toBeCloseTo(0.1 + 0.4, 12);
    // The other flavor: 0.1 until 11:30, then the newer every-flavor price 0.2.
    expect(running(small).map((r) => r.start)).toEqual([t('10:00', day), t('11:00', day)]);
    expect(running(small)[0]!.rate).toBe(0.1);
    expect(running(small)[1]!.rate).toBeCloseTo(0.15, 12);
    expect(cost(small)).toBeCloseTo(0.1 + 0.05 + 0.1, 12);
  });

  it('prices per usage type apply to GB-hours and address hours too', async () => {
    const day = '2026-11-23';
    const projectId = await timeline.project();
    const volumeId = await timeline.volume(projectId, 20, t('10:30', day));
    await timeline.deleteVolume(volumeId, t('12:30', day));
    const external = await timeline.externalNetwork(t('08:00', day));
    const ip = await external.allocate(projectId, t('10:00', day));
    await external.release(ip, t('13:00', day));
    await timeline.price('VOLUME', 0.01, t('00:00', day));
    await timeline.price('VOLUME', 0.02, t('12:00', day));
    await timeline.price('FLOATING_IP', 0.005, t('00:00', day));
    await waitForProjections(rt);
    const report = (await usageFor(rt, member(projectId), { from: t('00:00', day), to: t('00:00', '2026-11-24') }))!;
    const cost = Object.fromEntries(report.totals.map((x) => [x.usageType, x.cost]));
    // 10:30-12:00 at 0.01 per GB-hour, 12:00-12:30 at 0.02; three hours of the address at 0.005.
    expect(cost.VOLUME).toBeCloseTo(20 * 1.5 * 0.01 + 20 * 0.5 * 0.02, 12);
    expect(cost.FLOATING_IP).toBeCloseTo(3 * 0.005, 12);
    expect(report.cost).toBeCloseTo(cost.VOLUME! + cost.FLOATING_IP!, 12);
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
