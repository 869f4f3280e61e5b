import { z } from 'zod';
import { CreateFlavorInput, RegisterImageInput } from '../domain/catalog.js';
import type { Image as DomainImage } from '../domain/catalog.js';
import type { Caller } from '../domain/identity.js';
import type { StoredImage } from '../domain/image.js';
import * as inputs from '../domain/inputs.js';
import { Id } from '../domain/scalars.js';
import { rebuildProjection, waitForProjections } from '../projections/index.js';
import * as commands from './commands/index.js';
import { componentLog } from '../server/log.js';
import type { Runtime } from '../server/runtime.js';
import { builder, callerOf, type Context } from './builder.js';
import { parseInput } from './errors.js';
import type { AddressShape, VolumeShape } from './types.js';
import {
  AddressType,
  FlavorType,
  HostStateEnum,
  HostType,
  ImageType,
  InstanceType,
  OperationType,
  ProjectType,
  RoleEnum,
  VolumeType,
} from './types.js';

const log = componentLog('api.mutations');

// The two admin inputs domain/inputs.ts does not describe (yet).
const RetryOperationInputSchema = z.object({ id: Id });
const RebuildProjectionInputSchema = z.object({ name: z.string().min(1).max(64) });

export const OperationPayload = builder.objectRef<commands.LifecycleResult & { volume?: VolumeShape; address?: AddressShape; image?: StoredImage }>('OperationPayload').implement({
  fields: (t) => ({
    image: t.field({
      type: ImageType,
      nullable: true,
      description: 'snapshotInstance: the image the snapshot becomes (QUEUED at first, ACTIVE once the operation succeeds).',
      resolve: (p) => (p.image ? (p.image as unknown as DomainImage) : null),
    }),
    operation: t.field({ type: OperationType, resolve: (p) => p.operation }),
    instance: t.field({ type: InstanceType, nullable: true, resolve: (p) => p.instance ?? null }),
    volume: t.field({ type: VolumeType, nullable: true, resolve: (p) => p.volume ?? null }),
    address: t.field({ type: AddressType, nullable: true, resolve: (p) => p.address ?? null }),
  }),
});

const HostPayload = (name: string) =>
  builder.objectRef<{ host: Awaited<ReturnType<typeof commands.registerHost>>['host'] }>(name).implement({
    fields: (t) => ({ host: t.field({ type: HostType, resolve: (p) => p.host }) }),
  });
const RegisterHostPayload = HostPayload('RegisterHostPayload');
const SetHostStatePayload = builder.objectRef<Awaited<ReturnType<typeof commands.setHostState>>>('SetHostStatePayload').implement({
  fields: (t) => ({
    host: t.field({ type: HostType, resolve: (p) => p.host }),
    operation: t.field({ type: OperationType, nullable: true, description: 'The DRAIN_HOST operation a move to MAINTENANCE started.', resolve: (p) => p.operation ?? null }),
  }),
});
const CreateFlavorPayload = builder.objectRef<Awaited<ReturnType<typeof commands.createFlavor>>>('CreateFlavorPayload').implement({
  fields: (t) => ({ flavor: t.field({ type: FlavorType, resolve: (p) => p.flavor }) }),
});
const RegisterImagePayload = builder.objectRef<Awaited<ReturnType<typeof commands.registerImage>>>('RegisterImagePayload').implement({
  fields: (t) => ({ image: t.field({ type: ImageType, resolve: (p) => p.image }) }),
});
const CreateProjectPayload = builder.objectRef<Awaited<ReturnType<typeof commands.createProject>>>('CreateProjectPayload').implement({
  fields: (t) => ({ project: t.field({ type: ProjectType, resolve: (p) => p.project }) }),
});
const CreateTokenPayload = builder.objectRef<Awaited<ReturnType<typeof commands.createToken>>>('CreateTokenPayload').implement({
  fields: (t) => ({
    token: t.exposeString('token', { description: 'The secret: shown this once, stored only as a hash.' }),
    tokenId: t.exposeID('tokenId'),
    projectId: t.exposeID('projectId'),
    role: t.field({ type: RoleEnum, resolve: (p) => p.role }),
  }),
});
const ProjectionStatus = builder.objectRef<{ name: string; checkpoint: { transactionId: string; position: string }; events: number }>('ProjectionStatus').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    eventsReplayed: t.exposeInt('events'),
    position: t.string({ resolve: (p) => p.checkpoint.position }),
  }),
});
const RebuildProjectionPayload = builder.objectRef<{ projection: { name: string; checkpoint: { transactionId: string; position: string }; events: number } }>('RebuildProjectionPayload').implement({
  fields: (t) => ({ projection: t.field({ type: ProjectionStatus, resolve: (p) => p.projection }) }),
});

/**
 * Admin mutations that the next request reads back (a token used at once, a flavor booted from) wait
 * briefly for the projections, when they run, so the caller reads its own write.
 */
async function readYourWrites(rt: Runtime, names: string[]): Promise<void> {
  await waitForProjections(rt, undefined, { names, timeoutMs: 5000 }).catch((e: unknown) =>
    log.warn({ err: e, projections: names }, 'projections did not catch up after an admin mutation'),
  );
}

// Input objects mirror the zod schemas in domain/inputs.ts; GraphQL only checks the outline, zod decides.
const instanceActionFields = (t: PothosInputFieldBuilder) => ({ id: t.id({ required: true }), clientRequestId: t.string({ required: false }) });
type PothosInputFieldBuilder = Parameters<Parameters<typeof builder.inputType>[1]['fields']>[0];

const BootInstanceInput = builder.inputType('BootInstanceInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    flavorId: t.id({ required: true }),
    imageId: t.id({ required: true }),
    networkId: t.id({ required: false }),
    clientRequestId: t.string({ required: false }),
  }),
});
const InstanceActionInput = builder.inputType('InstanceActionInput', { fields: instanceActionFields });
const RebootInstanceInput = builder.inputType('RebootInstanceInput', {
  fields: (t) => ({ ...instanceActionFields(t), hard: t.boolean({ required: false }) }),
});
const MigrateInstanceInput = builder.inputType('MigrateInstanceInput', {
  fields: (t) => ({ ...instanceActionFields(t), targetHostId: t.id({ required: false }) }),
});
const ResizeInstanceInput = builder.inputType('ResizeInstanceInput', {
  fields: (t) => ({ ...instanceActionFields(t), flavorId: t.id({ required: true }) }),
});
const SnapshotInstanceInput = builder.inputType('SnapshotInstanceInput', {
  fields: (t) => ({ ...instanceActionFields(t), imageName: t.string({ required: true }) }),
});
const RegisterHostInput = builder.inputType('RegisterHostInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    address: t.string({ required: true }),
    port: t.int({ required: true }),
    hostKeyFingerprint: t.string({ required: true }),
  }),
});
const SetHostStateInput = builder.inputType('SetHostStateInput', {
  fields: (t) => ({ id: t.id({ required: true }), state: t.field({ type: HostStateEnum, required: true }) }),
});
const CreateFlavorInputType = builder.inputType('CreateFlavorInput', {
  fields: (t) => ({ name: t.string({ required: true }), vcpus: t.int({ required: true }), memoryMb: t.int({ required: true }), diskGb: t.int({ required: true }) }),
});
const RegisterImageInputType = builder.inputType('RegisterImageInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    format: t.string({ required: true }),
    sizeBytes: t.float({ required: true }),
    checksum: t.string({ required: false }),
  }),
});
const CreateProjectInput = builder.inputType('CreateProjectInput', { fields: (t) => ({ name: t.string({ required: true }) }) });
const CreateTokenInput = builder.inputType('CreateTokenInput', {
  fields: (t) => ({ projectId: t.id({ required: true }), role: t.field({ type: RoleEnum, required: true }) }),
});
const RetryOperationInput = builder.inputType('RetryOperationInput', { fields: (t) => ({ id: t.id({ required: true }) }) });
const ResetOperationInput = builder.inputType('ResetOperationInput', { fields: (t) => ({ id: t.id({ required: true }) }) });
const RebuildProjectionInput = builder.inputType('RebuildProjectionInput', { fields: (t) => ({ name: t.string({ required: true }) }) });

type Command<S extends z.ZodType, R> = (rt: Runtime, caller: Caller, input: z.infer<S>) => Promise<R>;

/** Parse with zod first (nothing is written on bad input), then hand the command the caller and the parsed input. */
/**
 * A resolver that parses the input, runs the command as the caller and, for the admin mutations whose
 * result the caller reads back at once (a new token, flavor, host), waits for those projections.
 */
export const run =
  <S extends z.ZodType, R>(schema: S, command: Command<S, R>, readsBackFrom: string[] = []) =>
  async (_root: unknown, args: { input: unknown }, ctx: Context): Promise<R> => {
    const input = parseInput(schema, args.input);
    const result = await command(ctx.rt, callerOf(ctx), input);
    if (readsBackFrom.length > 0) await readYourWrites(ctx.rt, readsBackFrom);
    return result;
  };

builder.mutationType({
  fields: (t) => {
    const lifecycle = <S extends z.ZodType>(input: Parameters<typeof t.arg>[0]['type'], schema: S, command: Command<S, commands.LifecycleResult>) =>
      t.field({
        type: OperationPayload,
        // Tenancy (another project's instance is NOT_FOUND) is the command's, decided on the stream.
        authScopes: { writer: true },
        args: { input: t.arg({ type: input as typeof InstanceActionInput, required: true }) },
        resolve: run(schema, command),
      });
    return {
      bootInstance: t.field({
        type: OperationPayload,
        authScopes: { writer: true },
        args: { input: t.arg({ type: BootInstanceInput, required: true }) },
        resolve: run(inputs.BootInstanceInput, commands.bootInstance),
      }),
      startInstance: lifecycle(InstanceActionInput, inputs.StartInstanceInput, commands.startInstance),
      stopInstance: lifecycle(InstanceActionInput, inputs.StopInstanceInput, commands.stopInstance),
      rebootInstance: t.field({
        type: OperationPayload,
        authScopes: { writer: true },
        args: { input: t.arg({ type: RebootInstanceInput, required: true }) },
        resolve: run(inputs.RebootInstanceInput, commands.rebootInstance),
      }),
      pauseInstance: lifecycle(InstanceActionInput, inputs.PauseInstanceInput, commands.pauseInstance),
      unpauseInstance: lifecycle(InstanceActionInput, inputs.UnpauseInstanceInput, commands.unpauseInstance),
      suspendInstance: lifecycle(InstanceActionInput, inputs.SuspendInstanceInput, commands.suspendInstance),
      resumeInstance: lifecycle(InstanceActionInput, inputs.ResumeInstanceInput, commands.resumeInstance),
      deleteInstance: lifecycle(InstanceActionInput, inputs.DeleteInstanceInput, commands.deleteInstance),
      migrateInstance: lifecycle(MigrateInstanceInput, inputs.MigrateInstanceInput, commands.migrateInstance),
      resizeInstance: lifecycle(ResizeInstanceInput, inputs.ResizeInstanceInput, commands.resizeInstance),
      snapshotInstance: lifecycle(SnapshotInstanceInput, inputs.SnapshotInstanceInput, commands.snapshotInstance),

      registerHost: t.field({
        type: RegisterHostPayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: RegisterHostInput, required: true }) },
        resolve: run(inputs.RegisterHostInput, commands.registerHost, ['hosts']),
      }),
      setHostState: t.field({
        type: SetHostStatePayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: SetHostStateInput, required: true }) },
        resolve: run(inputs.SetHostStateInput, commands.setHostState, ['hosts']),
      }),
      createFlavor: t.field({
        type: CreateFlavorPayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: CreateFlavorInputType, required: true }) },
        resolve: run(CreateFlavorInput, commands.createFlavor, ['catalog']),
      }),
      registerImage: t.field({
        type: RegisterImagePayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: RegisterImageInputType, required: true }) },
        resolve: run(RegisterImageInput, commands.registerImage, ['catalog']),
      }),
      createProject: t.field({
        type: CreateProjectPayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: CreateProjectInput, required: true }) },
        resolve: run(inputs.CreateProjectInput, commands.createProject, ['identity']),
      }),
      createToken: t.field({
        type: CreateTokenPayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: CreateTokenInput, required: true }) },
        // The token authenticates through rm_tokens: usable as soon as this returns.
        resolve: run(inputs.CreateTokenInput, commands.createToken, ['identity']),
      }),
      retryOperation: t.field({
        type: OperationPayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: RetryOperationInput, required: true }) },
        resolve: run(RetryOperationInputSchema, commands.retryOperation),
      }),
      resetOperation: t.field({
        type: OperationPayload,
        authScopes: { admin: true },
        description: 'Temporal reset of a FAILED operation still held (STRATUS_FAILURE_HOLD) to just before its failed step.',
        args: { input: t.arg({ type: ResetOperationInput, required: true }) },
        resolve: run(RetryOperationInputSchema, commands.resetOperation),
      }),
      rebuildProjection: t.field({
        type: RebuildProjectionPayload,
        authScopes: { admin: true },
        args: { input: t.arg({ type: RebuildProjectionInput, required: true }) },
        resolve: async (_r, a, ctx) => {
          const { name } = parseInput(RebuildProjectionInputSchema, a.input);
          return { projection: await rebuildProjection(ctx.rt, name) };
        },
      }),
    };
  },
});
