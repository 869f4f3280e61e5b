import { canRead, isAdmin } from '../domain/identity.js';
import { SetPriceInput, type Price } from '../domain/priceSheet.js';
import { UsageQuery, usageReport, type RatedRecord, type UsageReport, type UsageTotal } from '../domain/rating.js';
import { MeterName, MetersQuery, type Sample } from '../domain/meters.js';
import { UsageType } from '../domain/usage.js';
import { waitForProjections } from '../projections/index.js';
import { USAGE_PROJECTION } from '../projections/usage.js';
import { builder, callerOf } from './builder.js';
import * as commands from './commands/index.js';
import { parseInput } from './errors.js';
import { metersFor } from './meterReads.js';
import { priceSheet, usageFor, usageRecordByKey } from './usageReads.js';

/** CONTRACT.md metering: UsageRecord, UsageReport, `usage`, `setPrice`, `usageRecorded`. */

export const UsageTypeEnum = builder.enumType('UsageType', { values: UsageType.options });

export const UsageRecordType = builder.objectRef<RatedRecord>('UsageRecord').implement({
  fields: (t) => ({
    projectId: t.exposeID('projectId'),
    resourceId: t.exposeID('resourceId'),
    resourceType: t.exposeString('resourceType'),
    usageType: t.exposeString('usageType'),
    quantity: t.exposeFloat('quantity'),
    unit: t.exposeString('unit'),
    start: t.field({ type: 'DateTime', resolve: (r) => r.start }),
    end: t.field({ type: 'DateTime', resolve: (r) => r.end }),
    rate: t.float({ nullable: true, resolve: (r) => r.rate }),
    cost: t.float({ nullable: true, resolve: (r) => r.cost }),
    description: t.string({ nullable: true, resolve: (r) => r.description }),
    flavorId: t.id({ nullable: true, description: 'The flavor a VM record was metered at.', resolve: (r) => r.flavorId }),
    size: t.exposeFloat('size', { description: 'GB for storage records, 1 for hourly ones.' }),
  }),
});

const UsageTotalType = builder.objectRef<UsageTotal>('UsageTotal').implement({
  fields: (t) => ({
    usageType: t.exposeString('usageType'),
    quantity: t.exposeFloat('quantity'),
    unit: t.exposeString('unit'),
    cost: t.exposeFloat('cost'),
  }),
});

const UsageReportType = builder.objectRef<UsageReport>('UsageReport').implement({
  fields: (t) => ({
    projectId: t.exposeID('projectId'),
    from: t.field({ type: 'DateTime', resolve: (r) => r.from }),
    to: t.field({ type: 'DateTime', resolve: (r) => r.to }),
    records: t.field({ type: [UsageRecordType], resolve: (r) => r.records }),
    totals: t.field({ type: [UsageTotalType], resolve: (r) => r.totals }),
    cost: t.exposeFloat('cost'),
    currency: t.exposeString('currency'),
  }),
});

const PriceType = builder.objectRef<Price>('Price').implement({
  fields: (t) => ({
    usageType: t.exposeString('usageType'),
    flavorId: t.id({ nullable: true, resolve: (p) => p.flavorId }),
    unitPrice: t.exposeFloat('unitPrice'),
    currency: t.exposeString('currency'),
    effectiveFrom: t.field({ type: 'DateTime', resolve: (p) => p.effectiveFrom }),
  }),
});

const SetPricePayload = builder.objectRef<{ price: Price }>('SetPricePayload').implement({
  fields: (t) => ({ price: t.field({ type: PriceType, resolve: (p) => p.price }) }),
});

const SetPriceInputType = builder.inputType('SetPriceInput', {
  fields: (t) => ({
    usageType: t.field({ type: UsageTypeEnum, required: true }),
    flavorId: t.id({ required: false }),
    unitPrice: t.float({ required: true }),
    currency: t.string({ required: false }),
  }),
});

builder.queryField('usage', (t) =>
  t.field({
    type: UsageReportType,
    nullable: true,
    authScopes: { reader: true },
    description: "A project's usage records in [from, to), priced; a member's own project when projectId is omitted. Another project's is null.",
    args: { projectId: t.arg.id({ required: false }), from: t.arg({ type: 'DateTime', required: true }), to: t.arg({ type: 'DateTime', required: true }) },
    resolve: (_r, args, ctx) =>
      usageFor(ctx.rt, callerOf(ctx), parseInput(UsageQuery, { projectId: args.projectId == null ? undefined : String(args.projectId), from: args.from, to: args.to })),
  }),
);

const SampleType = builder.objectRef<Sample>('Sample').implement({
  fields: (t) => ({
    meter: t.exposeString('meter'),
    resourceId: t.exposeID('resourceId'),
    timestamp: t.field({ type: 'DateTime', resolve: (s) => s.timestamp }),
    value: t.exposeFloat('value'),
    unit: t.exposeString('unit'),
  }),
});

builder.queryField('meters', (t) =>
  t.field({
    type: [SampleType],
    authScopes: { reader: true },
    description: `An instance's samples of one meter (${MeterName.options.join(', ')}) in [from, to): raw for the last day, hourly averages before.`,
    args: {
      resourceId: t.arg.id({ required: true }),
      meter: t.arg.string({ required: true }),
      from: t.arg({ type: 'DateTime', required: true }),
      to: t.arg({ type: 'DateTime', required: true }),
    },
    resolve: (_r, args, ctx) =>
      metersFor(ctx.rt, callerOf(ctx), parseInput(MetersQuery, { resourceId: String(args.resourceId), meter: args.meter, from: args.from, to: args.to })),
  }),
);

builder.queryField('prices', (t) =>
  t.field({ type: [PriceType], authScopes: { reader: true }, description: 'The price sheet, oldest first.', resolve: (_r, _a, ctx) => priceSheet(ctx.rt.db) }),
);

builder.mutationField('setPrice', (t) =>
  t.field({
    type: SetPricePayload,
    authScopes: { admin: true },
    args: { input: t.arg({ type: SetPriceInputType, required: true }) },
    resolve: async (_r, args, ctx) => {
      const result = await commands.setPrice(ctx.rt, callerOf(ctx), parseInput(SetPriceInput, args.input));
      // The next usage query prices with it: wait (briefly) for the consumer to store it.
      await waitForProjections(ctx.rt, undefined, { names: [USAGE_PROJECTION], timeoutMs: 5000 }).catch(() => {});
      return result;
    },
  }),
);

builder.subscriptionField('usageRecorded', (t) =>
  t.field({
    type: UsageRecordType,
    authScopes: { reader: true },
    description: "Each usage record as the consumer closes it: the caller's own project's (admin: every project's, or projectId's).",
    args: { projectId: t.arg.id({ required: false }) },
    subscribe: (_r, { projectId }, ctx) => {
      const caller = callerOf(ctx);
      const wanted = projectId == null ? (isAdmin(caller) ? null : caller.projectId) : String(projectId);
      return ctx.changes.follow(
        (c) => c.kind === 'usage' && c.projectId !== null && (wanted === null || c.projectId === wanted) && canRead(caller, c.projectId),
        async (c) => {
          const record = await usageRecordByKey(ctx.rt, caller, c.id);
          if (!record) return null;
          return usageReport(record.projectId, record.start, record.end, [record], await priceSheet(ctx.rt.db)).records[0] ?? null;
        },
      );
    },
    resolve: (record) => record,
  }),
);
