import { resolveOffsetConnection } from '@pothos/plugin-relay';
import { builder, callerOf } from './builder.js';
import * as read from './readModel.js';
import { imagesVisibleTo } from './imageTypes.js';
import {
  EventType,
  FlavorType,
  HostStateEnum,
  HostType,
  ImageType,
  InstanceStateEnum,
  InstanceType,
  NetworkType,
  OperationKindEnum,
  OperationStatusEnum,
  OperationType,
} from './types.js';

const InstanceFilter = builder.inputType('InstanceFilter', {
  fields: (t) => ({
    state: t.field({ type: InstanceStateEnum, required: false }),
    hostId: t.id({ required: false }),
    name: t.string({ required: false }),
  }),
});

const OperationFilter = builder.inputType('OperationFilter', {
  fields: (t) => ({
    status: t.field({ type: OperationStatusEnum, required: false }),
    kind: t.field({ type: OperationKindEnum, required: false }),
    resourceId: t.id({ required: false }),
  }),
});

void HostStateEnum;

/**
 * CONTRACT.md "Queries". Every one needs a valid token (`reader`); hosts and failedOperations need admin.
 * A single resource the caller may not see is null, exactly as one that does not exist.
 */
builder.queryType({
  fields: (t) => ({
    instance: t.field({
      type: InstanceType,
      nullable: true,
      authScopes: { reader: true },
      args: { id: t.arg.id({ required: true }) },
      resolve: (_r, { id }, ctx) => read.instanceById(ctx.rt, callerOf(ctx), String(id)),
    }),
    instances: t.connection({
      type: InstanceType,
      authScopes: { reader: true },
      args: { filter: t.arg({ type: InstanceFilter, required: false }) },
      resolve: (_r, args, ctx) =>
        resolveOffsetConnection({ args, defaultSize: 50, maxSize: 500 }, ({ limit, offset }) =>
          read.instancesPage(ctx.rt, callerOf(ctx), { ...(args.filter ?? {}), hostId: args.filter?.hostId ? String(args.filter.hostId) : null }, limit, offset),
        ),
    }),
    hosts: t.field({ type: [HostType], authScopes: { admin: true }, resolve: (_r, _a, ctx) => read.allHosts(ctx.rt) }),
    host: t.field({
      type: HostType,
      nullable: true,
      authScopes: { admin: true },
      args: { id: t.arg.id({ required: true }) },
      resolve: (_r, { id }, ctx) => read.hostById(ctx.rt, String(id)),
    }),
    flavors: t.field({ type: [FlavorType], authScopes: { reader: true }, resolve: (_r, _a, ctx) => read.allFlavors(ctx.rt) }),
    images: t.field({
      type: [ImageType],
      authScopes: { reader: true },
      description: "PUBLIC images and the caller's project's PRIVATE ones.",
      resolve: async (_r, _a, ctx) => (await imagesVisibleTo(ctx.rt, callerOf(ctx))) as unknown as Awaited<ReturnType<typeof read.allImages>>,
    }),
    networks: t.field({ type: [NetworkType], authScopes: { reader: true }, description: 'Networks come with a later issue: empty for now.', resolve: () => [] }),
    operation: t.field({
      type: OperationType,
      nullable: true,
      authScopes: { reader: true },
      args: { id: t.arg.id({ required: true }) },
      resolve: (_r, { id }, ctx) => read.operationById(ctx.rt, callerOf(ctx), String(id)),
    }),
    operations: t.connection({
      type: OperationType,
      authScopes: { reader: true },
      args: { filter: t.arg({ type: OperationFilter, required: false }) },
      resolve: (_r, args, ctx) =>
        resolveOffsetConnection({ args, defaultSize: 50, maxSize: 500 }, ({ limit, offset }) =>
          read.operationsPage(
            ctx.rt,
            callerOf(ctx),
            { ...(args.filter ?? {}), resourceId: args.filter?.resourceId ? String(args.filter.resourceId) : null },
            limit,
            offset,
          ),
        ),
    }),
    events: t.field({
      type: [EventType],
      authScopes: { reader: true },
      description: "A stream's events after `after` (a position), oldest first.",
      args: { streamId: t.arg.string({ required: true }), after: t.arg.string({ required: false }), first: t.arg.int({ required: false }) },
      resolve: (_r, args, ctx) =>
        read.eventsOfStream(ctx.rt, callerOf(ctx), args.streamId, args.after && /^\d+$/.test(args.after) ? args.after : null, Math.min(args.first ?? 100, 1000)),
    }),
    failedOperations: t.field({
      type: [OperationType],
      authScopes: { admin: true },
      args: { first: t.arg.int({ required: false }) },
      resolve: (_r, args, ctx) => read.operationsPage(ctx.rt, callerOf(ctx), { status: 'FAILED' }, Math.min(args.first ?? 100, 1000), 0),
    }),
  }),
});
