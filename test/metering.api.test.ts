import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { gql, subscribeSse, type Collected } from './support/graphqlClient.js';
import { domainWriter, testRuntime } from './support/projectionFixtures.js';
import { usageTimeline } from './support/usageTimeline.js';

const ADMIN = `admin-${randomUUID()}`;
const t = (hhmm: string, day = '2026-11-10') => `${day}T${hhmm}:00.000Z`;
const USAGE = `query($p: ID, $from: DateTime!, $to: DateTime!) {
  usage(projectId: $p, from: $from, to: $to) { projectId cost currency totals { usageType quantity unit cost }
    records { projectId resourceId resourceType usageType quantity unit start end rate cost description } } }`;
const SET_PRICE = `mutation($i: SetPriceInput!) { setPrice(input: $i) { price { usageType flavorId unitPrice currency effectiveFrom } } }`;
const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

describe('metering over the GraphQL API: setPrice, usage and usageRecorded, with tenancy', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let api: { url: string; close(): Promise<void> };
  let timeline: ReturnType<typeof usageTimeline>;
  const project = { a: '', b: '' };
  const tokens = { aMember: '', aReader: '', bMember: '' };
  const open: Collected<unknown>[] = [];

  beforeAll(async () => {
    rt = await testRuntime('metering_api', { adminToken: ADMIN });
    runner = await startProjections(rt);
    api = await startApi(rt, { port: 0 });
    const write = domainWriter(rt);
    timeline = usageTimeline(rt);
    project.a = await write.project();
    project.b = await write.project();
    tokens.aMember = await write.token(project.a, 'MEMBER');
    tokens.aReader = await write.token(project.a, 'READER');
    tokens.bMember = await write.token(project.b, 'MEMBER');
    await waitForProjections(rt);
  });
  afterAll(async () => {
    for (const s of open) s.stop();
    await api?.close();
    await runner?.stop();
    await rt?.close();
  });

  it('usage gives a member its own project records, totals and cost; another project is null to it', async () => {
    const a = await timeline.boot(project.a, t('10:20'));
    await timeline.delete(a, t('12:50'));
    const b = await timeline.boot(project.b, t('10:00'));
    await timeline.delete(b, t('11:00'));
    await timeline.price('RUNNING_VM', 0.06, t('00:00'));
    await waitForProjections(rt);
    const window = { from: t('00:00'), to: t('00:00', '2026-11-11') };

    const own = await gql(api.url, tokens.aReader, USAGE, window);
    expect(own.errors).toBeUndefined();
    const report = own.data!.usage;
    expect(report.projectId).toBe(project.a);
    expect(report.currency).toBe('EUR');
    expect(report.records.every((r: { resourceId: string }) => r.resourceId === a)).toBe(true);
    expect(report.totals).toEqual([
      { usageType: 'ALLOCATED_VM', quantity: expect.closeTo(2.5, 12), unit: 'HOURS', cost: 0 },
      { usageType: 'RUNNING_VM', quantity: expect.closeTo(2.5, 12), unit: 'HOURS', cost: expect.closeTo(0.15, 12) },
    ]);
    expect(report.cost).toBeCloseTo(0.15, 12);

    expect((await gql(api.url, tokens.aMember, USAGE, { ...window, p: project.b })).data!.usage).toBeNull();
    expect((await gql(api.url, tokens.bMember, USAGE, { ...window, p: project.a })).data!.usage).toBeNull();
    const asAdmin = await gql(api.url, ADMIN, USAGE, { ...window, p: project.b });
    expect(asAdmin.data!.usage.records.map((r: { resourceId: string }) => r.resourceId)).toContain(b);
    expect(codeOf(await gql(api.url, undefined, USAGE, window))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(api.url, tokens.aMember, USAGE, { from: t('12:00'), to: t('11:00') }))).toBe('BAD_USER_INPUT');
  });

  it('`stratus usage --csv` exports the same records the API reports; a project the token may not see is an error', async () => {
    const run = promisify(execFile);
    const window = ['--from', t('00:00'), '--to', t('00:00', '2026-11-11')];
    const env = { ...process.env, STRATUS_URL: api.url, STRATUS_TOKEN: tokens.aMember };
    const { stdout } = await run(process.execPath, ['cli/bin.mjs', 'usage', ...window, '--csv'], { env });
    const [header, ...lines] = stdout.trim().split('\n');
    expect(header).toBe('start,end,resourceType,resourceId,usageType,quantity,unit,rate,cost');
    const reported = (await gql(api.url, tokens.aMember, USAGE, { from: t('00:00'), to: t('00:00', '2026-11-11') })).data!.usage;
    expect(lines.length).toBe(reported.records.length);
    expect(lines.map((l) => l.split(',').slice(0, 6))).toEqual(
      reported.records.map((r: Record<string, unknown>) => [r.start, r.end, r.resourceType, r.resourceId, r.usageType, String(r.quantity)]),
    );
    const table = await run(process.execPath, ['cli/bin.mjs', 'usage', '--project', project.a, ...window], { env });
    expect(table.stdout).toMatch(/^RUNNING_VM\s+2\.5000 HOURS\s+0\.1500 EUR$/m);
    await expect(run(process.execPath, ['cli/bin.mjs', 'usage', '--project', project.b, ...window], { env })).rejects.toMatchObject({
      stderr: expect.stringContaining('NOT_FOUND'),
    });
  });

  it('setPrice is admin only, refuses bad input with BAD_USER_INPUT, and then writes nothing', async () => {
    const count = async () => (await rt.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE type = 'PriceSet'`))[0]!.n;
    const before = await count();
    expect(codeOf(await gql(api.url, tokens.aMember, SET_PRICE, { i: { usageType: 'RUNNING_VM', unitPrice: 1 } }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(api.url, ADMIN, SET_PRICE, { i: { usageType: 'RUNNING_VM', unitPrice: -1 } }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(api.url, ADMIN, SET_PRICE, { i: { usageType: 'RUNNING_VM', unitPrice: 1, currency: 'euro' } }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(api.url, ADMIN, SET_PRICE, { i: { usageType: 'VOLUME', flavorId: randomUUID(), unitPrice: 1 } }))).toBe('BAD_USER_INPUT');
    expect(await count()).toBe(before);

    const set = await gql(api.url, ADMIN, SET_PRICE, { i: { usageType: 'ALLOCATED_VM', unitPrice: 0.01 } });
    expect(set.errors).toBeUndefined();
    // The sheet is in EUR already: a price without a currency takes the sheet's.
    expect(set.data!.setPrice.price).toMatchObject({ usageType: 'ALLOCATED_VM', flavorId: null, unitPrice: 0.01, currency: 'EUR' });
    expect(await count()).toBe(before + 1);
  });

  it("usageRecorded streams each record as it closes, the caller's own project only, priced", async () => {
    const SUB = `subscription($p: ID) { usageRecorded(projectId: $p) { projectId resourceId usageType quantity start end rate cost } }`;
    const mine = subscribeSse(api.url, tokens.aMember, SUB);
    const bOwn = subscribeSse(api.url, tokens.bMember, SUB);
    const bSpying = subscribeSse(api.url, tokens.bMember, SUB, { p: project.a });
    open.push(mine, bOwn, bSpying);
    // Records closed until both ends listen (a subscription registers a moment after its request).
    for (let minute = 10; mine.items.length === 0 || bOwn.items.length === 0; minute++) {
      for (const p of [project.a, project.b]) {
        const warm = await timeline.boot(p, t(`00:${minute}`, '2026-11-13'));
        await timeline.delete(warm, t(`00:${minute + 1}`, '2026-11-13'));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const seen = (c: Collected<unknown>, resourceId?: string) =>
      c.items.map((i) => (i.data as { usageRecorded: Record<string, unknown> }).usageRecorded).filter((r) => !resourceId || r.resourceId === resourceId);

    const a = await timeline.boot(project.a, t('08:10', '2026-11-12'));
    await timeline.stop(a, t('09:40', '2026-11-12'));
    const b = await timeline.boot(project.b, t('08:10', '2026-11-12'));
    await timeline.stop(b, t('08:40', '2026-11-12'));
    await waitForProjections(rt);
    await expect.poll(() => seen(mine, a).length, { timeout: 20_000 }).toBe(2);
    await expect.poll(() => seen(bOwn, b).length, { timeout: 20_000 }).toBe(1);
    expect(seen(mine, a)).toEqual([
      { projectId: project.a, resourceId: a, usageType: 'RUNNING_VM', quantity: expect.closeTo(50 / 60, 12), start: t('08:10', '2026-11-12'), end: t('09:00', '2026-11-12'), rate: 0.06, cost: expect.closeTo(0.05, 12) },
      { projectId: project.a, resourceId: a, usageType: 'RUNNING_VM', quantity: expect.closeTo(40 / 60, 12), start: t('09:00', '2026-11-12'), end: t('09:40', '2026-11-12'), rate: 0.06, cost: expect.closeTo(0.04, 12) },
    ]);
    expect(seen(mine).every((r) => r.projectId === project.a)).toBe(true);
    expect(seen(bOwn).every((r) => r.projectId === project.b)).toBe(true);
    expect(seen(bOwn, b)[0]).toMatchObject({ resourceId: b, start: t('08:10', '2026-11-12'), end: t('08:40', '2026-11-12') });
    // Another project's id names nothing for B's member: it never yields, not even the warm-up records.
    expect(bSpying.items).toEqual([]);
  });
});
