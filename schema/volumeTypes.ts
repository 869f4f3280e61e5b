import type { z } from 'zod';
import { canRead, isAdmin } from '../domain/identity.js';
import {
  AttachVolumeInput,
  CreateVolumeInput,
  DeleteVolumeInput,
  DetachVolumeInput,
  SnapshotVolumeInput,
  type VolumeSnapshot,
} from '../domain/volume.js';
import type { Caller } from '../domain/identity.js';
import * as commands from './commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { builder, callerOf, type Context } from './builder.js';
import { parseInput } from './errors.js';
import { OperationPayload } from './mutations.js';
import * as read from './readModel.js';
import { InstanceType, OperationKindEnum, VolumeType } from './types.js';
import { volumeById, volumesOf } from './volumeReads.js';

/** CONTRACT.md's Volume and VolumeSnapshot, the volume queries, mutations and the volumeChanged subscription. */

export const VolumeSnapshotType = builder.objectRef<VolumeSnapshot>('VolumeSnapshot').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    volumeId: t.exposeID('volumeId'),
    sizeGb: t.exposeInt('sizeGb'),
    state: t.exposeString('state', { description: 'CREATING AVAILABLE ERROR DELETED' }),
    createdAt: t.field({ type: 'DateTime', resolve: (s) => s.createdAt }),
  }),
});

VolumeType.implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    projectId: t.exposeID('projectId'),
    sizeGb: t.exposeInt('sizeGb'),
    state: t.exposeString('state', { description: 'CREATING AVAILABLE ATTACHING IN_USE DETACHING DELETING ERROR DELETED' }),
    task: t.field({ type: OperationKindEnum, nullable: true, resolve: (v) => v.task }),
    attachedTo: t.field({
      type: InstanceType,
      nullable: true,
      resolve: (v, _a, ctx) => (v.attachedTo ? read.instanceById(ctx.rt, callerOf(ctx), v.attachedTo) : null),
    }),
    device: t.string({ nullable: true, description: 'How the hypervisor names the attached disk.', resolve: (v) => v.device }),
    sourceSnapshotId: t.id({ nullable: true, resolve: (v) => v.sourceSnapshotId }),
    errorReason: t.string({ nullable: true, resolve: (v) => v.errorReason }),
    snapshots: t.field({ type: [VolumeSnapshotType], resolve: (v) => v.snapshots.filter((s) => s.state !== 'DELETED') }),
    createdAt: t.field({ type: 'DateTime', resolve: (v) => v.createdAt }),
    version: t.exposeInt('version'),
  }),
});

builder.queryFields((t) => ({
  volumes: t.field({ type: [VolumeType], authScopes: { reader: true }, resolve: (_r, _a, ctx) => volumesOf(ctx.rt, callerOf(ctx)) }),
  volume: t.field({
    type: VolumeType,
    nullable: true,
    authScopes: { reader: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, { id }, ctx) => volumeById(ctx.rt, callerOf(ctx), String(id)),
  }),
}));

const clientRequestId = (t: Parameters<Parameters<typeof builder.inputType>[1]['fields']>[0]) => t.string({ required: false });
const CreateVolumeInputType = builder.inputType('CreateVolumeInput', {
  fields: (t) => ({ name: t.string({ required: true }), sizeGb: t.int({ required: true }), snapshotId: t.id({ required: false }), clientRequestId: clientRequestId(t) }),
});
const DeleteVolumeInputType = builder.inputType('DeleteVolumeInput', { fields: (t) => ({ id: t.id({ required: true }), clientRequestId: clientRequestId(t) }) });
const attachFields = (t: Parameters<typeof clientRequestId>[0]) => ({
  instanceId: t.id({ required: true }),
  volumeId: t.id({ required: true }),
  clientRequestId: clientRequestId(t),
});
const AttachVolumeInputType = builder.inputType('AttachVolumeInput', { fields: attachFields });
const DetachVolumeInputType = builder.inputType('DetachVolumeInput', { fields: attachFields });
const SnapshotVolumeInputType = builder.inputType('SnapshotVolumeInput', {
  fields: (t) => ({ volumeId: t.id({ required: true }), name: t.string({ required: true }), clientRequestId: clientRequestId(t) }),
});

/** Zod decides (nothing is written on bad input); tenancy is the command's, decided on the streams. */
const run =
  <S extends z.ZodType>(schema: S, command: (rt: Runtime, caller: Caller, input: z.infer<S>) => Promise<commands.VolumeResult>) =>
  (_root: unknown, args: { input: unknown }, ctx: Context) =>
    command(ctx.rt, callerOf(ctx), parseInput(schema, args.input));

builder.mutationFields((t) => ({
  createVolume: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateVolumeInputType, required: true }) },
    resolve: run(CreateVolumeInput, commands.createVolume),
  }),
  deleteVolume: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DeleteVolumeInputType, required: true }) },
    resolve: run(DeleteVolumeInput, commands.deleteVolume),
  }),
  attachVolume: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: AttachVolumeInputType, required: true }) },
    resolve: run(AttachVolumeInput, commands.attachVolume),
  }),
  detachVolume: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DetachVolumeInputType, required: true }) },
    resolve: run(DetachVolumeInput, commands.detachVolume),
  }),
  snapshotVolume: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: SnapshotVolumeInputType, required: true }) },
    resolve: run(SnapshotVolumeInput, commands.snapshotVolume),
  }),
}));

builder.subscriptionFields((t) => ({
  volumeChanged: t.field({
    type: VolumeType,
    authScopes: { reader: true },
    description: 'The volume after each change; every volume of the caller when id is omitted.',
    args: { id: t.arg.id({ required: false }) },
    subscribe: (_r, { id }, ctx) => {
      const caller = callerOf(ctx);
      return ctx.changes.follow(
        (c) => c.kind === 'volume' && (id == null || c.id === String(id)) && (c.projectId === null ? isAdmin(caller) : canRead(caller, c.projectId)),
        (c) => volumeById(ctx.rt, caller, c.id),
      );
    },
    resolve: (volume) => volume,
  }),
}));
