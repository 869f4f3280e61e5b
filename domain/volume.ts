import { z } from 'zod';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { ResourceName } from './inputs.js';
import { ClientRequestId } from './operation.js';
import { Id, Timestamp } from './scalars.js';

/**
 * Volumes (Cinder): qcow2 files in the shared storage pool, attached to at most one instance at a time.
 * The volume stream is the truth every volume rule is decided against: one action at a time (the task),
 * one instance at a time (attachedTo), and its snapshots.
 */

export const VolumeState = z.enum(['CREATING', 'AVAILABLE', 'ATTACHING', 'IN_USE', 'DETACHING', 'DELETING', 'ERROR', 'DELETED']);
export type VolumeState = z.infer<typeof VolumeState>;

/** The operation kinds that act on a volume; a volume's `task` is one of these. */
export const VolumeActionKind = z.enum(['CREATE_VOLUME', 'DELETE_VOLUME', 'ATTACH_VOLUME', 'DETACH_VOLUME', 'SNAPSHOT_VOLUME']);
export type VolumeActionKind = z.infer<typeof VolumeActionKind>;

export const SnapshotState = z.enum(['CREATING', 'AVAILABLE', 'ERROR', 'DELETED']);

export const VolumeSnapshot = z.object({
  id: Id,
  name: z.string(),
  volumeId: Id,
  sizeGb: z.number().int().positive(),
  state: SnapshotState,
  createdAt: Timestamp,
});
export type VolumeSnapshot = z.infer<typeof VolumeSnapshot>;

export const VolumeSize = z.number().int().min(1).max(16_384);
const TaskOutcome = z.enum(['SUCCEEDED', 'FAILED', 'CANCELED']);
const Op = { operationId: Id, at: Timestamp };

/** Every event on a `volume-<id>` stream. */
export const volumeEvents = {
  VolumeCreateRequested: z.object({
    volumeId: Id,
    projectId: Id,
    name: z.string().min(1).max(63),
    sizeGb: VolumeSize,
    sourceSnapshotId: Id.nullable(),
    operationId: Id,
    requestedAt: Timestamp,
  }),
  /** An action begins and holds the volume; an attach names its instance, a snapshot its new snapshot. */
  VolumeTaskStarted: z.object({
    ...Op,
    kind: VolumeActionKind,
    instanceId: Id.optional(),
    snapshot: z.object({ id: Id, name: z.string().min(1).max(63) }).optional(),
  }),
  VolumeCreated: z.object(Op),
  VolumeAttached: z.object({ ...Op, instanceId: Id, device: z.string().min(1).max(128) }),
  VolumeDetached: z.object({ ...Op, instanceId: Id }),
  VolumeSnapshotted: z.object({ ...Op, snapshotId: Id }),
  VolumeDeleted: z.object(Op),
  /** The action failed for good; a failed create leaves the volume ERROR, other failures leave it as it was. */
  VolumeFailed: z.object({ ...Op, code: z.string().min(1), message: z.string() }),
  VolumeTaskFinished: z.object({ ...Op, outcome: TaskOutcome }),
} satisfies Record<string, z.ZodType>;
export type VolumeEvent = EventOf<typeof volumeEvents>;

export const Volume = z.object({
  id: Id,
  projectId: Id,
  name: z.string(),
  sizeGb: z.number().int(),
  state: VolumeState,
  task: VolumeActionKind.nullable(),
  taskOperationId: Id.nullable(),
  /** The instance an ATTACH_VOLUME task is attaching to. */
  attachingTo: Id.nullable(),
  attachedTo: Id.nullable(),
  device: z.string().nullable(),
  sourceSnapshotId: Id.nullable(),
  snapshots: z.array(VolumeSnapshot),
  errorReason: z.string().nullable(),
  createdAt: Timestamp,
  version: z.number().int().nonnegative(),
});
export type Volume = z.infer<typeof Volume>;
export type VolumeDeciderState = Volume | null;

export type VolumeCommand =
  | { type: 'requestCreate'; data: Omit<z.infer<typeof volumeEvents.VolumeCreateRequested>, 'requestedAt'> & { at: string } }
  | { type: 'beginAction'; data: z.infer<typeof volumeEvents.VolumeTaskStarted> }
  | { type: 'recordCreated'; data: { operationId: string; at: string } }
  | { type: 'recordAttached'; data: { operationId: string; instanceId: string; device: string; at: string } }
  | { type: 'recordDetached'; data: { operationId: string; instanceId: string; at: string } }
  | { type: 'recordSnapshotted'; data: { operationId: string; snapshotId: string; at: string } }
  | { type: 'recordDeleted'; data: { operationId: string; at: string } }
  | { type: 'recordFailure'; data: { operationId: string; code: string; message: string; at: string } }
  | { type: 'finishAction'; data: { operationId: string; outcome: z.infer<typeof TaskOutcome>; at: string } }
  /** The instance it is attached to was deleted: the volume survives, AVAILABLE (Cinder's detach on server delete). */
  | { type: 'releaseFromDeletedInstance'; data: { operationId: string; instanceId: string; at: string } };

const notFound = (id?: string) =>
  id ? new StratusError('NOT_FOUND', `volume ${id} not found`, { id }) : new StratusError('NOT_FOUND', 'volume not found');

/** Which states each action may begin from (Cinder's status checks). */
const allowedFrom: Record<Exclude<VolumeActionKind, 'CREATE_VOLUME'>, readonly VolumeState[]> = {
  ATTACH_VOLUME: ['AVAILABLE'],
  DETACH_VOLUME: ['IN_USE'],
  // Cinder's default: no snapshot of an in-use volume (its contents are moving under the guest).
  SNAPSHOT_VOLUME: ['AVAILABLE'],
  DELETE_VOLUME: ['AVAILABLE', 'ERROR'],
};

/**
 * Why `request` may not begin on `volume` now, or null when it may: NOT_FOUND, CONFLICT while another
 * action holds it (naming that operation), CONFLICT when its state does not allow the action.
 */
export function checkVolumeAction(
  volume: Pick<Volume, 'id' | 'state' | 'task' | 'taskOperationId' | 'attachedTo'> | null,
  request: { kind: Exclude<VolumeActionKind, 'CREATE_VOLUME'>; instanceId?: string },
): StratusError | null {
  if (!volume || volume.state === 'DELETED') return notFound(volume?.id);
  if (volume.task !== null) {
    return new StratusError('CONFLICT', `volume ${volume.id} is busy: operation ${volume.taskOperationId} (${volume.task}) is running`, {
      runningOperation: { id: volume.taskOperationId, kind: volume.task },
    });
  }
  if (request.kind === 'DELETE_VOLUME' && volume.attachedTo) {
    return new StratusError('CONFLICT', `volume ${volume.id} is attached to instance ${volume.attachedTo}: detach it first`, {
      state: volume.state,
      attachedTo: volume.attachedTo,
    });
  }
  if (request.kind === 'ATTACH_VOLUME' && volume.attachedTo) {
    return new StratusError('CONFLICT', `volume ${volume.id} is already attached to instance ${volume.attachedTo}`, {
      state: volume.state,
      attachedTo: volume.attachedTo,
    });
  }
  if (request.kind === 'DETACH_VOLUME' && volume.attachedTo !== request.instanceId) {
    return new StratusError('CONFLICT', `volume ${volume.id} is not attached to instance ${request.instanceId}`, {
      state: volume.state,
      attachedTo: volume.attachedTo,
    });
  }
  if (!allowedFrom[request.kind].includes(volume.state)) {
    return new StratusError('CONFLICT', `cannot ${request.kind.toLowerCase().replace('_', ' ')} ${volume.id}: it is ${volume.state}`, {
      state: volume.state,
    });
  }
  return null;
}

function requireTask(state: VolumeDeciderState, operationId: string): Volume {
  if (!state) throw notFound();
  if (state.taskOperationId !== operationId) {
    throw new StratusError('CONFLICT', `operation ${operationId} does not hold volume ${state.id}`, {
      runningOperation: state.task ? { id: state.taskOperationId, kind: state.task } : null,
    });
  }
  return state;
}

/** Repeating a command with the same operation id decides nothing, so every activity may retry. */
export function decideVolume(command: VolumeCommand, state: VolumeDeciderState): VolumeEvent[] {
  switch (command.type) {
    case 'requestCreate': {
      const { at, ...data } = command.data;
      if (state) {
        if (state.taskOperationId === data.operationId && state.task === 'CREATE_VOLUME') return [];
        throw new StratusError('CONFLICT', `volume ${state.id} already exists`, { id: state.id });
      }
      return [{ type: 'VolumeCreateRequested', data: { ...data, requestedAt: at } }];
    }
    case 'beginAction': {
      const d = command.data;
      if (state && state.taskOperationId === d.operationId && state.task === d.kind) return [];
      if (d.kind === 'CREATE_VOLUME') {
        // A volume is created by requestCreate; a failed create (ERROR, and only that leaves it ERROR) is taken again by its retry.
        if (!state || state.state !== 'ERROR' || state.task !== null) throw new StratusError('CONFLICT', 'only a volume whose create failed (ERROR) is created again');
        return [{ type: 'VolumeTaskStarted', data: d }];
      }
      const refusal = checkVolumeAction(state, { kind: d.kind, ...(d.instanceId ? { instanceId: d.instanceId } : {}) });
      if (refusal) throw refusal;
      return [{ type: 'VolumeTaskStarted', data: d }];
    }
    case 'recordCreated': {
      const volume = requireTask(state, command.data.operationId);
      return volume.state === 'CREATING' ? [{ type: 'VolumeCreated', data: command.data }] : [];
    }
    case 'recordAttached': {
      const volume = requireTask(state, command.data.operationId);
      if (volume.attachedTo === command.data.instanceId) return [];
      if (volume.attachingTo !== command.data.instanceId) {
        throw new StratusError('CONFLICT', `volume ${volume.id} is not being attached to ${command.data.instanceId}`);
      }
      return [{ type: 'VolumeAttached', data: command.data }];
    }
    case 'recordDetached': {
      const volume = requireTask(state, command.data.operationId);
      return volume.attachedTo === command.data.instanceId ? [{ type: 'VolumeDetached', data: command.data }] : [];
    }
    case 'recordSnapshotted': {
      const volume = requireTask(state, command.data.operationId);
      const snapshot = volume.snapshots.find((s) => s.id === command.data.snapshotId);
      if (!snapshot) throw new StratusError('NOT_FOUND', `snapshot ${command.data.snapshotId} not found`);
      return snapshot.state === 'CREATING' ? [{ type: 'VolumeSnapshotted', data: command.data }] : [];
    }
    case 'recordDeleted': {
      const volume = requireTask(state, command.data.operationId);
      return volume.state === 'DELETED' ? [] : [{ type: 'VolumeDeleted', data: command.data }];
    }
    case 'recordFailure': {
      const volume = requireTask(state, command.data.operationId);
      return volume.errorReason === `${command.data.code}: ${command.data.message}` ? [] : [{ type: 'VolumeFailed', data: command.data }];
    }
    case 'finishAction': {
      if (!state) throw notFound();
      if (state.taskOperationId !== command.data.operationId) return [];
      return [{ type: 'VolumeTaskFinished', data: command.data }];
    }
    case 'releaseFromDeletedInstance': {
      if (!state || state.attachedTo !== command.data.instanceId) return [];
      return [{ type: 'VolumeDetached', data: command.data }];
    }
  }
}

/** Where a volume rests when no action holds it. */
const restingState = (v: Volume): VolumeState => (v.attachedTo ? 'IN_USE' : 'AVAILABLE');

const transitional: Partial<Record<VolumeActionKind, VolumeState>> = {
  // Only a retried create begins as a task (a first one begins with VolumeCreateRequested).
  CREATE_VOLUME: 'CREATING',
  ATTACH_VOLUME: 'ATTACHING',
  DETACH_VOLUME: 'DETACHING',
  DELETE_VOLUME: 'DELETING',
};

export function evolveVolume(state: VolumeDeciderState, event: VolumeEvent): VolumeDeciderState {
  if (event.type === 'VolumeCreateRequested') {
    const d = event.data;
    return {
      id: d.volumeId,
      projectId: d.projectId,
      name: d.name,
      sizeGb: d.sizeGb,
      state: 'CREATING',
      task: 'CREATE_VOLUME',
      taskOperationId: d.operationId,
      attachingTo: null,
      attachedTo: null,
      device: null,
      sourceSnapshotId: d.sourceSnapshotId,
      snapshots: [],
      errorReason: null,
      createdAt: d.requestedAt,
      version: 1,
    };
  }
  if (!state) return state;
  const next: Volume = { ...state, version: state.version + 1 };
  switch (event.type) {
    case 'VolumeTaskStarted': {
      const d = event.data;
      // A retried snapshot takes its own (failed) snapshot again rather than adding a second one.
      const retried = d.snapshot && next.snapshots.some((s) => s.id === d.snapshot!.id);
      const snapshots = !d.snapshot
        ? next.snapshots
        : retried
          ? next.snapshots.map((s) => (s.id === d.snapshot!.id ? { ...s, state: 'CREATING' as const } : s))
          : [...next.snapshots, { id: d.snapshot.id, name: d.snapshot.name, volumeId: next.id, sizeGb: next.sizeGb, state: 'CREATING' as const, createdAt: d.at }];
      return {
        ...next,
        task: d.kind,
        taskOperationId: d.operationId,
        state: transitional[d.kind] ?? next.state,
        attachingTo: d.kind === 'ATTACH_VOLUME' ? (d.instanceId ?? null) : null,
        snapshots,
      };
    }
    case 'VolumeCreated':
      return { ...next, state: 'AVAILABLE', errorReason: null };
    case 'VolumeAttached':
      return { ...next, state: 'IN_USE', attachedTo: event.data.instanceId, attachingTo: null, device: event.data.device };
    case 'VolumeDetached':
      // Mid-action (a detach) it stays DETACHING until the task ends; at rest (its instance deleted) it is AVAILABLE.
      return { ...next, attachedTo: null, device: null, state: next.task ? next.state : 'AVAILABLE' };
    case 'VolumeSnapshotted':
      return { ...next, snapshots: next.snapshots.map((s) => (s.id === event.data.snapshotId ? { ...s, state: 'AVAILABLE' as const } : s)) };
    case 'VolumeDeleted':
      return { ...next, state: 'DELETED', snapshots: next.snapshots.map((s) => ({ ...s, state: 'DELETED' as const })) };
    case 'VolumeFailed': {
      const errorReason = `${event.data.code}: ${event.data.message}`;
      const snapshots = next.snapshots.map((s) => (s.state === 'CREATING' ? { ...s, state: 'ERROR' as const } : s));
      return { ...next, errorReason, snapshots, state: next.task === 'CREATE_VOLUME' ? 'ERROR' : next.state };
    }
    case 'VolumeTaskFinished': {
      const settled = next.state === 'DELETED' || next.state === 'ERROR' ? next.state : restingState(next);
      return { ...next, task: null, taskOperationId: null, attachingTo: null, state: next.state === 'CREATING' ? 'ERROR' : settled };
    }
  }
}

export const volumeDecider: Decider<VolumeDeciderState, VolumeCommand, VolumeEvent> = {
  decide: decideVolume,
  evolve: evolveVolume,
  initialState: () => null,
};

/** CONTRACT.md's volume inputs, parsed at the edge. */
export const CreateVolumeInput = z.object({
  name: ResourceName,
  sizeGb: VolumeSize,
  snapshotId: Id.optional(),
  clientRequestId: ClientRequestId.optional(),
});
export type CreateVolumeInput = z.infer<typeof CreateVolumeInput>;
export const DeleteVolumeInput = z.object({ id: Id, clientRequestId: ClientRequestId.optional() });
export type DeleteVolumeInput = z.infer<typeof DeleteVolumeInput>;
export const AttachVolumeInput = z.object({ instanceId: Id, volumeId: Id, clientRequestId: ClientRequestId.optional() });
export type AttachVolumeInput = z.infer<typeof AttachVolumeInput>;
export const DetachVolumeInput = AttachVolumeInput;
export type DetachVolumeInput = AttachVolumeInput;
export const SnapshotVolumeInput = z.object({ volumeId: Id, name: ResourceName, clientRequestId: ClientRequestId.optional() });
export type SnapshotVolumeInput = z.infer<typeof SnapshotVolumeInput>;
