import { z } from 'zod';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { Caller } from './identity.js';
import { OperationKind } from './instanceTransitions.js';
import { idNamespaces, nameBasedUuid } from './nameBasedId.js';
import { Id, Timestamp } from './scalars.js';

export { OperationKind } from './instanceTransitions.js';

export const OperationStatus = z.enum(['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELED']);
export type OperationStatus = z.infer<typeof OperationStatus>;

export const StepStatus = z.enum(['RUNNING', 'SUCCEEDED', 'FAILED', 'SKIPPED']);
export type StepStatus = z.infer<typeof StepStatus>;

export const OperationError = z.object({ code: z.string().min(1), message: z.string() });
export type OperationError = z.infer<typeof OperationError>;

/** Who asked: the caller as its token identified it, kept for the audit log. */
export const Actor = Caller;
export type Actor = Caller;

export const ClientRequestId = z.string().min(1).max(128);

/** Every event on an `operation-<id>` stream. */
export const operationEvents = {
  OperationRequested: z.object({
    operationId: Id,
    kind: OperationKind,
    resourceId: Id,
    projectId: Id,
    workflowId: z.string().min(1),
    clientRequestId: ClientRequestId.optional(),
    actor: Actor,
    requestedAt: Timestamp,
    /** The OpenTelemetry trace of the request that asked for it (when tracing is on). */
    traceId: z.string().regex(/^[0-9a-f]{32}$/).optional(),
  }),
  OperationStarted: z.object({ runId: z.string().min(1), at: Timestamp }),
  OperationStepStarted: z.object({ name: z.string().min(1), at: Timestamp }),
  OperationStepFinished: z.object({
    name: z.string().min(1),
    status: StepStatus.exclude(['RUNNING']),
    error: OperationError.optional(),
    at: Timestamp,
  }),
  /** How far a long step (a migration's transfer) has got; recorded coarsely, not for every agent report. */
  OperationStepProgressed: z.object({ name: z.string().min(1), percent: z.number().min(0).max(100).optional(), message: z.string().max(500), at: Timestamp }),
  /** An operation acting on many resources (drain, evacuate) started one of its own per resource. */
  OperationChildAdded: z.object({ operationId: Id, resourceId: Id, at: Timestamp }),
  OperationSucceeded: z.object({ at: Timestamp }),
  OperationFailed: z.object({ code: z.string().min(1), message: z.string(), at: Timestamp }),
  OperationCanceled: z.object({ at: Timestamp }),
  /** resetOperation: the failed run goes back to just before `fromStep` (Temporal reset); the steps before it stand. */
  OperationReset: z.object({ fromStep: z.string().min(1), resetEventId: z.number().int().positive(), at: Timestamp }),
} satisfies Record<string, z.ZodType>;
export type OperationEvent = EventOf<typeof operationEvents>;

export const OperationStep = z.object({
  name: z.string(),
  status: StepStatus,
  /** Null for a step recorded only as finished (typically SKIPPED). */
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
  error: OperationError.nullable(),
  /** The step's last recorded progress, for steps that report it. */
  progress: z.object({ percent: z.number().nullable(), message: z.string() }).nullable().optional(),
});
export type OperationStep = z.infer<typeof OperationStep>;

/** CONTRACT.md's `Operation`, plus what the audit needs. */
export const Operation = z.object({
  id: Id,
  kind: OperationKind,
  status: OperationStatus,
  resourceId: Id,
  projectId: Id,
  workflowId: z.string(),
  runId: z.string().nullable(),
  clientRequestId: z.string().nullable(),
  actor: Actor,
  steps: z.array(OperationStep),
  error: OperationError.nullable(),
  createdAt: Timestamp,
  finishedAt: Timestamp.nullable(),
  /** The operations this one started (drain, evacuate), in the order started. */
  children: z.array(Id).optional(),
  version: z.number().int().nonnegative(),
  /** Runs of its workflow so far: the first, then one per retryOperation or resetOperation. Absent in rows folded before it existed. */
  attempts: z.number().int().nonnegative().optional(),
  /** The OpenTelemetry trace of the whole action; null when tracing was off. */
  traceId: z.string().nullable().optional(),
});
export type Operation = z.infer<typeof Operation>;

export type OperationDeciderState = Operation | null;

/** The Temporal workflow id of an operation: the operation id is its suffix (CONTRACT.md). */
export const workflowIdOf = (operationId: string): string => `op-${operationId}`;

/** The operation id inside a workflow id, or undefined when it is not one of ours. */
export const operationIdOfWorkflow = (workflowId: string): string | undefined => {
  const id = workflowId.startsWith('op-') ? workflowId.slice(3) : undefined;
  return id && Id.safeParse(id).success ? id : undefined;
};

/**
 * The operation id for a request: name-based when the client sent a `clientRequestId`, so a repeat maps
 * to the same `operation-<id>` stream (the store's "no stream" expectation then reports the repeat, and
 * the API returns the first operation); the caller's fresh random id otherwise.
 */
export function operationIdFor(request: { projectId: string; clientRequestId?: string | null; randomId: string }): string {
  if (!request.clientRequestId) return request.randomId;
  // The project is part of the name: two projects choosing the same clientRequestId never meet.
  return nameBasedUuid(idNamespaces.operation, `${request.projectId}\n${request.clientRequestId}`);
}

export type OperationCommand =
  | { type: 'request'; data: Omit<z.infer<typeof operationEvents.OperationRequested>, 'workflowId' | 'requestedAt'> & { at: string } }
  | { type: 'start'; data: { runId: string; at: string } }
  | { type: 'startStep'; data: { name: string; at: string } }
  | { type: 'finishStep'; data: z.infer<typeof operationEvents.OperationStepFinished> }
  | { type: 'progressStep'; data: z.infer<typeof operationEvents.OperationStepProgressed> }
  | { type: 'addChild'; data: z.infer<typeof operationEvents.OperationChildAdded> }
  | { type: 'succeed'; data: { at: string } }
  | { type: 'fail'; data: { code: string; message: string; at: string } }
  | { type: 'cancel'; data: { at: string } }
  | { type: 'reset'; data: z.infer<typeof operationEvents.OperationReset> };

const isFinished = (s: OperationStatus) => s === 'SUCCEEDED' || s === 'FAILED' || s === 'CANCELED';

const conflict = (op: Operation, what: string) =>
  new StratusError('CONFLICT', `operation ${op.id} is ${op.status}: cannot ${what}`, { id: op.id, status: op.status });

/**
 * Status moves PENDING → RUNNING → SUCCEEDED | FAILED | CANCELED. Two ways back: a new run id on a
 * RUNNING operation (Temporal reset or continue-as-new) and on a FAILED one (`retryOperation`).
 * Repeating a command that already took effect decides nothing, so activities may retry freely.
 */
export function decideOperation(command: OperationCommand, state: OperationDeciderState): OperationEvent[] {
  if (command.type === 'request') {
    const { at, ...data } = command.data;
    if (state) {
      const same = state.kind === data.kind && state.resourceId === data.resourceId && state.projectId === data.projectId;
      if (same) return [];
      throw new StratusError('CONFLICT', `clientRequestId ${data.clientRequestId ?? ''} was already used for another request`, {
        operationId: state.id,
      });
    }
    return [{ type: 'OperationRequested', data: { ...data, workflowId: workflowIdOf(data.operationId), requestedAt: at } }];
  }
  if (!state) throw new StratusError('NOT_FOUND', 'operation not found');
  switch (command.type) {
    case 'start':
      if (state.runId === command.data.runId && state.status === 'RUNNING') return [];
      if (state.status === 'SUCCEEDED' || state.status === 'CANCELED') throw conflict(state, 'start');
      return [{ type: 'OperationStarted', data: command.data }];
    case 'startStep': {
      if (state.status !== 'RUNNING') throw conflict(state, `start step ${command.data.name}`);
      const last = lastStep(state, command.data.name);
      if (last?.status === 'RUNNING') return [];
      return [{ type: 'OperationStepStarted', data: command.data }];
    }
    case 'finishStep': {
      if (state.status !== 'RUNNING') throw conflict(state, `finish step ${command.data.name}`);
      const last = lastStep(state, command.data.name);
      if (last && last.status !== 'RUNNING') return [];
      return [{ type: 'OperationStepFinished', data: command.data }];
    }
    case 'progressStep': {
      // Progress of a step that is no longer running is stale news: dropped, not an error.
      if (state.status !== 'RUNNING' || lastStep(state, command.data.name)?.status !== 'RUNNING') return [];
      return [{ type: 'OperationStepProgressed', data: command.data }];
    }
    case 'addChild':
      if (state.children?.includes(command.data.operationId)) return [];
      if (state.status !== 'RUNNING') throw conflict(state, 'add a child operation');
      return [{ type: 'OperationChildAdded', data: command.data }];
    case 'succeed':
      if (state.status === 'SUCCEEDED') return [];
      if (state.status !== 'RUNNING') throw conflict(state, 'succeed');
      return [{ type: 'OperationSucceeded', data: command.data }];
    case 'fail':
      if (state.status === 'FAILED') return [];
      if (isFinished(state.status)) throw conflict(state, 'fail');
      return [{ type: 'OperationFailed', data: command.data }];
    case 'cancel':
      if (state.status === 'CANCELED') return [];
      if (isFinished(state.status)) throw conflict(state, 'cancel');
      return [{ type: 'OperationCanceled', data: command.data }];
    case 'reset':
      if (state.status !== 'FAILED') throw conflict(state, 'reset');
      return [{ type: 'OperationReset', data: command.data }];
  }
}

const lastStep = (op: Operation, name: string): OperationStep | undefined => op.steps.findLast((s) => s.name === name);

/** Replaces the newest step named `name` that is still running, or appends a step finished without a start. */
function finishStep(steps: OperationStep[], finished: z.infer<typeof operationEvents.OperationStepFinished>): OperationStep[] {
  const index = steps.findLastIndex((s) => s.name === finished.name && s.status === 'RUNNING');
  const step: OperationStep = {
    name: finished.name,
    status: finished.status,
    startedAt: index >= 0 ? steps[index]!.startedAt : null,
    finishedAt: finished.at,
    error: finished.error ?? null,
    ...(index >= 0 && steps[index]!.progress ? { progress: steps[index]!.progress } : {}),
  };
  return index >= 0 ? steps.with(index, step) : [...steps, step];
}

export function evolveOperation(state: OperationDeciderState, event: OperationEvent): OperationDeciderState {
  if (event.type === 'OperationRequested') {
    const d = event.data;
    return {
      id: d.operationId,
      kind: d.kind,
      status: 'PENDING',
      resourceId: d.resourceId,
      projectId: d.projectId,
      workflowId: d.workflowId,
      runId: null,
      clientRequestId: d.clientRequestId ?? null,
      actor: d.actor,
      steps: [],
      error: null,
      createdAt: d.requestedAt,
      finishedAt: null,
      version: 1,
      attempts: 0,
      traceId: d.traceId ?? null,
    };
  }
  if (!state) return state;
  const next = { ...state, version: state.version + 1 };
  switch (event.type) {
    case 'OperationStarted': {
      const attempts = (state.attempts ?? 0) + (event.data.runId === state.runId ? 0 : 1);
      return { ...next, status: 'RUNNING', runId: event.data.runId, error: null, finishedAt: null, attempts };
    }
    case 'OperationStepStarted':
      return {
        ...next,
        steps: [...state.steps, { name: event.data.name, status: 'RUNNING', startedAt: event.data.at, finishedAt: null, error: null }],
      };
    case 'OperationStepFinished':
      return { ...next, steps: finishStep(state.steps, event.data) };
    case 'OperationStepProgressed': {
      const index = state.steps.findLastIndex((s) => s.name === event.data.name && s.status === 'RUNNING');
      if (index < 0) return next;
      const progress = { percent: event.data.percent ?? null, message: event.data.message };
      return { ...next, steps: state.steps.with(index, { ...state.steps[index]!, progress }) };
    }
    case 'OperationChildAdded':
      return { ...next, children: [...(state.children ?? []), event.data.operationId] };
    case 'OperationSucceeded':
      return { ...next, status: 'SUCCEEDED', finishedAt: event.data.at };
    case 'OperationFailed':
      return { ...next, status: 'FAILED', error: { code: event.data.code, message: event.data.message }, finishedAt: event.data.at };
    case 'OperationCanceled':
      return { ...next, status: 'CANCELED', finishedAt: event.data.at };
    case 'OperationReset':
      // RUNNING again on the same run id until the reset run's first step records its own.
      return {
        ...next,
        status: 'RUNNING',
        error: null,
        finishedAt: null,
        steps: [...state.steps, { name: 'reset', status: 'SUCCEEDED', startedAt: event.data.at, finishedAt: event.data.at, error: null }],
      };
  }
}

export const operationDecider: Decider<OperationDeciderState, OperationCommand, OperationEvent> = {
  decide: decideOperation,
  evolve: evolveOperation,
  initialState: () => null,
};
