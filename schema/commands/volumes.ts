import { randomUUID } from 'node:crypto';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { StratusError } from '../../domain/errors.js';
import { instanceStream, operationStream, volumeStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { decideInstance, instanceDecider, type Instance, type InstanceEvent } from '../../domain/instance.js';
import { decideOperation, operationDecider, operationIdFor, type Operation } from '../../domain/operation.js';
import {
  decideVolume,
  volumeDecider,
  type AttachVolumeInput,
  type CreateVolumeInput,
  type DeleteVolumeInput,
  type SnapshotVolumeInput,
  type Volume,
  type VolumeActionKind,
  type VolumeEvent,
} from '../../domain/volume.js';
import { readFolded } from '../../activities/events.js';
import { failOperation } from '../../activities/operationSteps.js';
import { recordOnInstance } from '../../activities/instanceRecords.js';
import { recordOnVolume, type VolumeContext } from '../../activities/volumeRecords.js';
import { WrongExpectedVersion } from '../../eventstore/index.js';
import { componentLog } from '../../server/log.js';
import type { Runtime } from '../../server/runtime.js';
import { workflowIdOf } from '../../domain/operation.js';
import type { VolumeOperationInput } from '../../workflows/volumeRunbook.js';
import { requireMutableIn, requireWriter } from './access.js';
import { appendNew, commandMetadata, now, readInstanceState, readOperation, startOperationWorkflow, type LifecycleResult } from './operations.js';

const log = componentLog('commands.volumes');

export type VolumeResult = LifecycleResult & { volume: Volume };

const volumeNotFound = (id: string) => () => new StratusError('NOT_FOUND', `volume ${id} not found`, { id });
const instanceNotFound = (id: string) => () => new StratusError('NOT_FOUND', `instance ${id} not found`, { id });

const readVolumeState = (rt: Runtime, id: string) => readFolded(rt, volumeStream(id), volumeDecider);

/** A request to act on a volume, and (attach, detach) the instance it also holds. */
interface VolumeRequest {
  kind: VolumeActionKind;
  volumeId: string;
  instanceId?: string;
  clientRequestId?: string | undefined;
  /** The volume's events this request decides, given the volume as it is now (null: a new one). */
  decide: (volume: Volume | null, operationId: string, at: string) => VolumeEvent[];
  /** Checked against the volume before anything is written (tenancy first). */
  check?: (volume: Volume | null) => void;
}

/**
 * The recipe every volume command follows, the instance actions' recipe with one more stream: a repeated
 * clientRequestId answers with the first operation; otherwise the volume's stream (and for an attach or
 * detach the instance's) decides, and the operation, the volume's task and the instance's task are
 * recorded in one transaction with every stream's version expected. Twenty attaches of one volume race
 * on the volume's version: one commits, the others decide again on what it is now and are refused.
 */
async function actOnVolume(rt: Runtime, caller: Caller, request: VolumeRequest): Promise<VolumeResult> {
  requireWriter(caller);
  const operationId = operationIdFor({ projectId: caller.projectId, clientRequestId: request.clientRequestId ?? null, randomId: randomUUID() });
  if (request.clientRequestId) {
    const repeat = await repeatedVolumeRequest(rt, operationId, request);
    if (repeat) return repeat;
  }
  for (let round = 1; ; round++) {
    const { state: volume, version: volumeVersion } = await readVolumeState(rt, request.volumeId);
    request.check?.(volume);
    const projectId = volume?.projectId ?? caller.projectId;
    const at = now();
    let instancePart: { instance: Instance; version: number; events: InstanceEvent[] } | undefined;
    if (request.instanceId) {
      const { state: instance, version } = await readInstanceState(rt, request.instanceId);
      if (!instance || instance.state === 'DELETED') throw instanceNotFound(request.instanceId)();
      requireMutableIn(caller, instance.projectId, instanceNotFound(request.instanceId));
      // Cinder and Nova: a volume serves instances of its own project only (only an admin sees both to be told so).
      if (instance.projectId !== projectId) {
        throw new StratusError('CONFLICT', `volume ${request.volumeId} and instance ${instance.id} belong to different projects`, {
          volumeProjectId: projectId,
          instanceProjectId: instance.projectId,
        });
      }
      const kind = request.kind as 'ATTACH_VOLUME' | 'DETACH_VOLUME';
      instancePart = { instance, version, events: decideInstance({ type: 'beginAction', data: { operationId, kind, at } }, instance) };
    }
    const volumeEvents = request.decide(volume, operationId, at);
    const operationEvents = decideOperation(
      {
        type: 'request',
        data: { operationId, kind: request.kind, resourceId: request.volumeId, projectId, actor: caller, at, ...(request.clientRequestId ? { clientRequestId: request.clientRequestId } : {}) },
      },
      null,
    );
    const metadata = commandMetadata(caller, operationId);
    try {
      await rt.db.transaction(async (tx) => {
        await appendNew(rt, operationStream(operationId), operationEvents, 'noStream', metadata, tx);
        await appendNew(rt, volumeStream(request.volumeId), volumeEvents, volumeVersion === 0 ? 'noStream' : volumeVersion, metadata, tx);
        if (instancePart) await appendNew(rt, instanceStream(instancePart.instance.id), instancePart.events, instancePart.version, metadata, tx);
      });
    } catch (e) {
      if (!(e instanceof WrongExpectedVersion)) throw e;
      if (e.streamId === operationStream(operationId)) {
        const repeat = await repeatedVolumeRequest(rt, operationId, request);
        if (repeat) return repeat;
      }
      // Contention is the normal case here (many attaches of one volume), so keep deciding until refused.
      if (round >= 50) throw e;
      continue;
    }
    const input: VolumeOperationInput = {
      operationId,
      volumeId: request.volumeId,
      actor: caller.tokenId,
      attempt: 1,
      ...(request.instanceId ? { instanceId: request.instanceId } : {}),
    };
    await startOrCompensateVolume(rt, request.kind, input);
    const result: VolumeResult = {
      operation: operationEvents.reduce(operationDecider.evolve, null as Operation | null)!,
      volume: volumeEvents.reduce(volumeDecider.evolve, volume)!,
    };
    if (instancePart) result.instance = instancePart.events.reduce(instanceDecider.evolve, instancePart.instance as Instance | null)!;
    return result;
  }
}

/** A volume the caller may change, or NOT_FOUND (another project's volume does not exist for it). */
const existingVolume = (caller: Caller, id: string) => (volume: Volume | null) => {
  if (!volume || volume.state === 'DELETED') throw volumeNotFound(id)();
  requireMutableIn(caller, volume.projectId, volumeNotFound(id));
};

const begin = (kind: Exclude<VolumeActionKind, 'CREATE_VOLUME'>, extra: { instanceId?: string; snapshot?: { id: string; name: string } } = {}) =>
  (volume: Volume | null, operationId: string, at: string) => decideVolume({ type: 'beginAction', data: { operationId, kind, at, ...extra } }, volume);

export async function createVolume(rt: Runtime, caller: Caller, input: CreateVolumeInput): Promise<VolumeResult> {
  requireWriter(caller);
  let sizeGb = input.sizeGb;
  if (input.snapshotId) {
    const source = await snapshotOf(rt, caller, input.snapshotId);
    if (source.state !== 'AVAILABLE') throw new StratusError('CONFLICT', `snapshot ${source.id} is ${source.state}, not AVAILABLE`, { id: source.id });
    // Cinder: a volume from a snapshot is at least the snapshot's size.
    sizeGb = Math.max(sizeGb, source.sizeGb);
  }
  const volumeId = randomUUID();
  return actOnVolume(rt, caller, {
    kind: 'CREATE_VOLUME',
    volumeId,
    clientRequestId: input.clientRequestId,
    decide: (volume, operationId, at) =>
      decideVolume(
        { type: 'requestCreate', data: { volumeId, projectId: caller.projectId, name: input.name, sizeGb, sourceSnapshotId: input.snapshotId ?? null, operationId, at } },
        volume,
      ),
  });
}

export const deleteVolume = (rt: Runtime, caller: Caller, input: DeleteVolumeInput) =>
  actOnVolume(rt, caller, { kind: 'DELETE_VOLUME', volumeId: input.id, clientRequestId: input.clientRequestId, check: existingVolume(caller, input.id), decide: begin('DELETE_VOLUME') });

export const attachVolume = (rt: Runtime, caller: Caller, input: AttachVolumeInput) =>
  actOnVolume(rt, caller, {
    kind: 'ATTACH_VOLUME',
    volumeId: input.volumeId,
    instanceId: input.instanceId,
    clientRequestId: input.clientRequestId,
    check: existingVolume(caller, input.volumeId),
    decide: begin('ATTACH_VOLUME', { instanceId: input.instanceId }),
  });

export const detachVolume = (rt: Runtime, caller: Caller, input: AttachVolumeInput) =>
  actOnVolume(rt, caller, {
    kind: 'DETACH_VOLUME',
    volumeId: input.volumeId,
    instanceId: input.instanceId,
    clientRequestId: input.clientRequestId,
    check: existingVolume(caller, input.volumeId),
    decide: begin('DETACH_VOLUME', { instanceId: input.instanceId }),
  });

export function snapshotVolume(rt: Runtime, caller: Caller, input: SnapshotVolumeInput): Promise<VolumeResult> {
  const snapshotId = randomUUID();
  return actOnVolume(rt, caller, {
    kind: 'SNAPSHOT_VOLUME',
    volumeId: input.volumeId,
    clientRequestId: input.clientRequestId,
    check: existingVolume(caller, input.volumeId),
    decide: begin('SNAPSHOT_VOLUME', { snapshot: { id: snapshotId, name: input.name } }),
  });
}

/** A snapshot as its volume's stream records it; another project's is NOT_FOUND. Found through the log, not a projection. */
async function snapshotOf(rt: Runtime, caller: Caller, snapshotId: string) {
  const notFound = () => new StratusError('NOT_FOUND', `snapshot ${snapshotId} not found`, { id: snapshotId });
  const [row] = await rt.db.query<{ stream_id: string }>(
    `SELECT stream_id FROM events WHERE type = 'VolumeTaskStarted' AND data->'snapshot'->>'id' = $1 LIMIT 1`,
    [snapshotId],
  );
  if (!row) throw notFound();
  const { state: volume } = await readFolded(rt, row.stream_id, volumeDecider);
  const snapshot = volume?.snapshots.find((s) => s.id === snapshotId);
  if (!volume || !snapshot || snapshot.state === 'DELETED') throw notFound();
  requireMutableIn(caller, volume.projectId, notFound);
  return snapshot;
}

/** The first operation of a repeated clientRequestId, its workflow started again if its start was lost. */
async function repeatedVolumeRequest(rt: Runtime, operationId: string, request: VolumeRequest): Promise<VolumeResult | undefined> {
  const op = await readOperation(rt, operationId);
  if (!op) return undefined;
  const same = op.kind === request.kind && (request.kind === 'CREATE_VOLUME' || op.resourceId === request.volumeId);
  if (!same) throw new StratusError('CONFLICT', 'this clientRequestId was already used for another request', { operationId: op.id });
  const { state: volume } = await readVolumeState(rt, op.resourceId);
  if (op.status === 'PENDING') await startOperationWorkflow(rt, op.kind, (await volumeWorkflowInputOf(rt, op)) as never);
  return { operation: op, volume: volume! };
}

/** The workflow input of a volume operation, rebuilt from its streams. */
async function volumeWorkflowInputOf(rt: Runtime, op: Operation): Promise<VolumeOperationInput> {
  const events = await rt.store.readStream(volumeStream(op.resourceId));
  const began = events.findLast((e) => e.type === 'VolumeTaskStarted' && e.data.operationId === op.id);
  const instanceId = began?.type === 'VolumeTaskStarted' ? began.data.instanceId : undefined;
  return { operationId: op.id, volumeId: op.resourceId, actor: op.actor.tokenId, attempt: 1, ...(instanceId ? { instanceId } : {}) };
}

/** Starts the workflow; when Temporal cannot be reached, releases every task the command took and fails the operation. */
async function startOrCompensateVolume(rt: Runtime, kind: VolumeActionKind, input: VolumeOperationInput): Promise<void> {
  try {
    await startOperationWorkflow(rt, kind, input as never);
  } catch (e) {
    log.error({ err: e, operationId: input.operationId }, 'could not start the workflow; compensating');
    const message = `could not start workflow ${workflowIdOf(input.operationId)}: ${(e as Error).message}`;
    const ctx: VolumeContext = { ...input, instanceId: input.instanceId ?? '', workflowId: workflowIdOf(input.operationId), runId: '' };
    const key = `${input.operationId}:a1:startFailed`;
    await recordOnVolume(rt, ctx, key, () => [
      { type: 'recordFailure', data: { operationId: input.operationId, code: 'INTERNAL', message, at: now() } },
      { type: 'finishAction', data: { operationId: input.operationId, outcome: 'FAILED', at: now() } },
    ]);
    if (input.instanceId) {
      await recordOnInstance(rt, ctx, `${key}:instance`, () => [{ type: 'finishAction', data: { operationId: input.operationId, outcome: 'FAILED', at: now() } }]);
    }
    await failOperation(rt, ctx, { code: 'INTERNAL', message });
    throw new StratusError('INTERNAL', message, { operationId: input.operationId });
  }
}

/**
 * retryOperation of a FAILED volume operation (admin): the volume's task is taken again for the same
 * operation, with what the first run began with (its instance, its snapshot), and an attach's or detach's
 * instance task as well, in one transaction; then a new run of the same workflow id starts with the next
 * attempt, whose events and agent calls get fresh keys. A failed create (the volume ERROR) is created
 * again; a failed snapshot fills the same snapshot. If the volume or instance has moved on meanwhile (another
 * action, deleted, attached elsewhere) the retry is refused like the request would be now.
 */
export async function retryVolumeOperation(rt: Runtime, op: Operation, attempt: number, metadata: ReturnType<typeof commandMetadata>): Promise<{ runId: string | undefined; volume: Volume; instance?: Instance }> {
  const kind = op.kind as VolumeActionKind;
  const events = await rt.store.readStream(volumeStream(op.resourceId));
  const began = events.findLast((e) => (e.type === 'VolumeTaskStarted' || e.type === 'VolumeCreateRequested') && e.data.operationId === op.id);
  const instanceId = began?.type === 'VolumeTaskStarted' ? began.data.instanceId : undefined;
  const snapshot = began?.type === 'VolumeTaskStarted' ? began.data.snapshot : undefined;
  const at = now();
  const { state: volume, version } = await readVolumeState(rt, op.resourceId);
  const volumeEvents = decideVolume(
    { type: 'beginAction', data: { operationId: op.id, kind, at, ...(instanceId ? { instanceId } : {}), ...(snapshot ? { snapshot } : {}) } },
    volume,
  );
  let instancePart: { instance: Instance; version: number; events: InstanceEvent[] } | undefined;
  if (instanceId) {
    const { state: instance, version: instanceVersion } = await readInstanceState(rt, instanceId);
    instancePart = {
      instance: instance!,
      version: instanceVersion,
      events: decideInstance({ type: 'beginAction', data: { operationId: op.id, kind: kind as 'ATTACH_VOLUME' | 'DETACH_VOLUME', at } }, instance),
    };
  }
  await rt.db.transaction(async (tx) => {
    if (volumeEvents.length > 0) await appendNew(rt, volumeStream(op.resourceId), volumeEvents, version, metadata, tx);
    if (instancePart && instancePart.events.length > 0) await appendNew(rt, instanceStream(instancePart.instance.id), instancePart.events, instancePart.version, metadata, tx);
  });
  const input: VolumeOperationInput = { operationId: op.id, volumeId: op.resourceId, actor: op.actor.tokenId, attempt, ...(instanceId ? { instanceId } : {}) };
  const runId = await startOperationWorkflow(rt, kind, input as never, WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY);
  return {
    runId,
    volume: volumeEvents.reduce(volumeDecider.evolve, volume)!,
    ...(instancePart ? { instance: instancePart.events.reduce(instanceDecider.evolve, instancePart.instance as Instance | null)! } : {}),
  };
}
