import { contractImageStatus } from '../domain/image.js';
import { HostState } from '../domain/host.js';
import { canRead } from '../domain/identity.js';
import { InstanceState, OperationKind, type Instance } from '../domain/instance.js';
import { Role } from '../domain/identity.js';
import { OperationStatus, StepStatus, type Operation, type OperationStep as DomainStep } from '../domain/operation.js';
import type { Flavor as DomainFlavor, Image as DomainImage } from '../domain/catalog.js';
import type { Host as DomainHost } from '../domain/host.js';
import type { Resources as DomainResources } from '../domain/resources.js';
import type { Address as DomainAddress } from '../domain/network.js';
import type { NetworkShape } from './networkReadModel.js';
import { addressesOf } from './networkReadModel.js';
import { builder, callerOf } from './builder.js';
import * as read from './readModel.js';
import { volumesAttachedTo } from './volumeReads.js';
import type { Volume as DomainVolume } from '../domain/volume.js';
import { lastHeartbeatOf } from '../activities/hostHeartbeats.js';

/** The GraphQL types of CONTRACT.md ("Resources", "Asynchronous operations"), each backed by its domain shape. */

export const InstanceStateEnum = builder.enumType('InstanceState', { values: InstanceState.options });
export const OperationKindEnum = builder.enumType('OperationKind', { values: OperationKind.options });
export const OperationStatusEnum = builder.enumType('OperationStatus', { values: OperationStatus.options });
export const StepStatusEnum = builder.enumType('StepStatus', { values: StepStatus.options });
export const HostStateEnum = builder.enumType('HostState', { values: HostState.options });
export const RoleEnum = builder.enumType('Role', { values: Role.options });
export const AddressKindEnum = builder.enumType('AddressKind', { values: ['FIXED', 'FLOATING'] as const });

export const ResourcesType = builder.objectRef<DomainResources>('Resources').implement({
  fields: (t) => ({
    vcpus: t.exposeInt('vcpus'),
    memoryMb: t.exposeInt('memoryMb'),
    diskGb: t.exposeInt('diskGb'),
  }),
});

export const FlavorType = builder.objectRef<DomainFlavor>('Flavor').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    vcpus: t.exposeInt('vcpus'),
    memoryMb: t.exposeInt('memoryMb'),
    diskGb: t.exposeInt('diskGb'),
  }),
});

export const ImageType = builder.objectRef<DomainImage>('Image').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    format: t.exposeString('format'),
    sizeBytes: t.exposeFloat('sizeBytes'),
    // Registered images' events keep Glance's lowercase words; the contract's statuses are uppercase.
    status: t.string({ description: 'QUEUED SAVING ACTIVE ERROR DELETED', resolve: (i) => contractImageStatus(i.status) }),
    checksum: t.string({ nullable: true, resolve: (i) => i.checksum ?? null }),
  }),
});

export const OperationErrorType = builder.objectRef<{ code: string; message: string }>('OperationError').implement({
  fields: (t) => ({ code: t.exposeString('code'), message: t.exposeString('message') }),
});

const StepProgressType = builder.objectRef<{ percent: number | null; message: string }>('StepProgress').implement({
  fields: (t) => ({ percent: t.float({ nullable: true, resolve: (p) => p.percent }), message: t.exposeString('message') }),
});

export const OperationStepType = builder.objectRef<DomainStep>('OperationStep').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    status: t.field({ type: StepStatusEnum, resolve: (s) => s.status }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.startedAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.finishedAt }),
    error: t.field({ type: OperationErrorType, nullable: true, resolve: (s) => s.error }),
    progress: t.field({ type: StepProgressType, nullable: true, resolve: (s) => s.progress ?? null }),
  }),
});

// Declared before it is implemented: an operation's children are operations.
export const OperationType = builder.objectRef<Operation>('Operation');
OperationType.implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    kind: t.field({ type: OperationKindEnum, resolve: (o) => o.kind }),
    status: t.field({ type: OperationStatusEnum, resolve: (o) => o.status }),
    resourceId: t.exposeID('resourceId'),
    projectId: t.exposeID('projectId'),
    workflowId: t.exposeString('workflowId'),
    runId: t.string({ nullable: true, resolve: (o) => o.runId }),
    clientRequestId: t.string({ nullable: true, resolve: (o) => o.clientRequestId }),
    steps: t.field({ type: [OperationStepType], resolve: (o) => o.steps }),
    children: t.field({
      type: [OperationType],
      description: 'The operations a drain or an evacuation started, one per instance.',
      resolve: async (o, _args, ctx) => {
        const children = await Promise.all((o.children ?? []).map((id) => read.operationById(ctx.rt, callerOf(ctx), id)));
        return children.filter((c): c is Operation => c !== null);
      },
    }),
    error: t.field({ type: OperationErrorType, nullable: true, resolve: (o) => o.error }),
    createdAt: t.field({ type: 'DateTime', resolve: (o) => o.createdAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (o) => o.finishedAt }),
    traceId: t.string({ nullable: true, description: 'The OpenTelemetry trace of the whole action (null when tracing is off).', resolve: (o) => o.traceId ?? null }),
    attempts: t.int({ description: 'Runs of its workflow so far: the first, then one per retryOperation or resetOperation.', resolve: (o) => o.attempts ?? (o.runId ? 1 : 0) }),
    failedStep: t.field({ type: OperationStepType, nullable: true, description: 'The newest step that failed, if any.', resolve: (o) => o.steps.findLast((s) => s.status === 'FAILED') ?? null }),
  }),
});

export const EventType = builder.objectRef<read.AuditEvent>('Event').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    streamId: t.exposeString('streamId'),
    version: t.exposeInt('version'),
    position: t.exposeString('position'),
    type: t.exposeString('type'),
    data: t.field({ type: 'JSON', resolve: (e) => e.data }),
    metadata: t.field({ type: 'JSON', resolve: (e) => e.metadata }),
    recordedAt: t.field({ type: 'DateTime', resolve: (e) => e.recordedAt }),
  }),
});

export const ProjectType = builder.objectRef<{ id: string; name: string }>('Project').implement({
  fields: (t) => ({ id: t.exposeID('id'), name: t.exposeString('name') }),
});

export type VolumeShape = DomainVolume;
/** An address as the write side and rm_addresses describe it (schema/networkSchema.ts implements its type). */
export type AddressShape = DomainAddress;

export const HostType = builder.objectRef<DomainHost>('Host');
export const InstanceType = builder.objectRef<Instance>('Instance');

/** Its fields are in volumeTypes.ts, with the rest of the volume schema. */
export const VolumeType = builder.objectRef<VolumeShape>('Volume');

// Implemented in schema/networkSchema.ts, with the network queries and mutations.
export const NetworkType = builder.objectRef<NetworkShape>('Network');
export const AddressType = builder.objectRef<AddressShape>('Address');

HostType.implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    address: t.exposeString('address'),
    port: t.exposeInt('port'),
    hostKeyFingerprint: t.exposeString('hostKeyFingerprint'),
    hypervisor: t.exposeString('hypervisor'),
    state: t.field({ type: HostStateEnum, resolve: (h) => h.state }),
    capacity: t.field({ type: ResourcesType, resolve: (h) => h.capacity }),
    allocated: t.field({ type: ResourcesType, resolve: (h) => h.allocated }),
    lastHeartbeatAt: t.field({ type: 'DateTime', nullable: true, resolve: (h, _a, ctx) => lastHeartbeatOf(ctx.rt, h.id) }),
    instances: t.field({ type: [InstanceType], resolve: (h, _a, ctx) => read.instancesOnHost(ctx.rt, callerOf(ctx), h.id) }),
  }),
});

InstanceType.implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    projectId: t.exposeID('projectId'),
    state: t.field({ type: InstanceStateEnum, resolve: (i) => i.state }),
    task: t.field({ type: OperationKindEnum, nullable: true, resolve: (i) => i.task }),
    // Flavors are never edited, so the catalog row matches the snapshot; the snapshot stands in if it is gone.
    flavor: t.field({
      type: FlavorType,
      resolve: async (i, _a, ctx) => (await read.flavorById(ctx.rt, i.flavor.id)) ?? { ...i.flavor, name: i.flavor.id },
    }),
    image: t.field({
      type: ImageType,
      resolve: async (i, _a, ctx) =>
        (await read.imageById(ctx.rt, i.imageId)) ?? ({ id: i.imageId, name: i.imageId, format: 'raw', sizeBytes: 0, status: 'deleted' } as const),
    }),
    host: t.field({ type: HostType, nullable: true, resolve: (i, _a, ctx) => (i.hostId ? read.hostById(ctx.rt, i.hostId) : null) }),
    networkId: t.id({ nullable: true, resolve: (i) => i.networkId }),
    errorReason: t.string({ nullable: true, resolve: (i) => i.errorReason }),
    addresses: t.field({ type: [AddressType], resolve: (i, _a, ctx) => addressesOf(ctx.rt, callerOf(ctx), { instanceId: i.id }) }),
    volumes: t.field({ type: [VolumeType], description: 'The volumes attached to it now.', resolve: (i, _a, ctx) => volumesAttachedTo(ctx.rt, callerOf(ctx), i.id) }),
    createdAt: t.field({ type: 'DateTime', resolve: (i) => i.createdAt }),
    launchedAt: t.field({ type: 'DateTime', nullable: true, resolve: (i) => i.launchedAt }),
    version: t.exposeInt('version'),
    operations: t.field({
      type: [OperationType],
      description: 'Its history, newest first.',
      resolve: (i, _a, ctx) => read.operationsPage(ctx.rt, callerOf(ctx), { resourceId: i.id }, 1000, 0),
    }),
    events: t.field({
      type: [EventType],
      description: 'Its audit log, oldest first.',
      resolve: (i, _a, ctx) =>
        canRead(callerOf(ctx), i.projectId) ? read.eventsOfStream(ctx.rt, callerOf(ctx), `instance-${i.id}`, null, 10_000) : [],
    }),
  }),
});
