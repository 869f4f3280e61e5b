import { z } from 'zod';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import {
  InstanceAction,
  InstanceState,
  OperationKind,
  instanceActionOf,
  stateAfter,
} from './instanceTransitions.js';
import { Id, Timestamp } from './scalars.js';

export { InstanceAction, InstanceState, OperationKind, instanceActionOf, instanceTransitions, stateAfter } from './instanceTransitions.js';

/** The flavor as it was when the instance was booted or resized: later flavor edits never change a running instance. */
export const FlavorSnapshot = z.object({
  id: Id,
  vcpus: z.number().int().positive(),
  memoryMb: z.number().int().positive(),
  diskGb: z.number().int().nonnegative(),
});
export type FlavorSnapshot = z.infer<typeof FlavorSnapshot>;

export const TaskOutcome = z.enum(['SUCCEEDED', 'FAILED', 'CANCELED']);
export type TaskOutcome = z.infer<typeof TaskOutcome>;

/** The operation kinds that act on an existing instance (BOOT creates one; volumes and IPs have their own). */
export const InstanceActionKind = z.enum([
  'START', 'STOP', 'REBOOT', 'PAUSE', 'UNPAUSE', 'SUSPEND', 'RESUME', 'RESIZE', 'MIGRATE', 'SNAPSHOT', 'DELETE', 'ATTACH_VOLUME', 'DETACH_VOLUME',
  'EVACUATE',
]);
export type InstanceActionKind = z.infer<typeof InstanceActionKind>;

const Op = { operationId: Id, at: Timestamp };

/** Every event on an `instance-<id>` stream. Each carries the operation that caused it, for the audit log. */
export const instanceEvents = {
  InstanceBootRequested: z.object({
    instanceId: Id,
    projectId: Id,
    name: z.string().min(1).max(63),
    flavor: FlavorSnapshot,
    imageId: Id,
    networkId: Id.nullable(),
    operationId: Id,
    requestedAt: Timestamp,
  }),
  /** An action begins: sets the instance's task (Nova's task_state), which holds off every other action. */
  InstanceTaskStarted: z.object({
    ...Op,
    kind: InstanceActionKind,
    hard: z.boolean().optional(),
    /** MIGRATE: the host the operator asked for (absent: the scheduler picks). */
    targetHostId: Id.optional(),
    /** RESIZE: the flavor asked for, as it was when asked. */
    flavor: FlavorSnapshot.optional(),
    /** SNAPSHOT: the image (made QUEUED by the same command) that the snapshot becomes. */
    imageId: Id.optional(),
  }),
  InstanceScheduled: z.object({ ...Op, hostId: Id }),
  InstanceLaunched: z.object({ operationId: Id, hostId: Id, launchedAt: Timestamp }),
  InstanceStarted: z.object(Op),
  InstanceStopped: z.object(Op),
  InstanceRebooted: z.object({ ...Op, hard: z.boolean() }),
  InstancePaused: z.object(Op),
  InstanceUnpaused: z.object(Op),
  InstanceSuspended: z.object(Op),
  InstanceResumed: z.object(Op),
  /** `hostId` when the resize moved the instance (no room where it was: a cold migration). */
  InstanceResized: z.object({ ...Op, flavor: FlavorSnapshot, fromHostId: Id.nullable().optional(), hostId: Id.optional() }),
  InstanceMigrated: z.object({ ...Op, fromHostId: Id.nullable(), hostId: Id }),
  InstanceSnapshotted: z.object({ ...Op, imageId: Id }),
  /** Rebuilt from its image on `hostId` because `fromHostId` went DOWN (Nova's evacuate). */
  InstanceEvacuated: z.object({ ...Op, fromHostId: Id.nullable(), hostId: Id }),
  /**
   * Its host stopped answering (`down`) or answers again: noted by the host's health check, outside any
   * task, so the instance shows why it may be unreachable without being held.
   */
  InstanceHostNoted: z.object({ hostId: Id, down: z.boolean(), reason: z.string(), at: Timestamp }),
  /** The instance is broken (→ ERROR). Host and flavor stay recorded so cleanup knows what to release. */
  InstanceFailed: z.object({ ...Op, code: z.string().min(1), message: z.string() }),
  InstanceDeleted: z.object(Op),
  /** The action is over, whatever its outcome: clears the task so the next action may begin. */
  InstanceTaskFinished: z.object({ ...Op, outcome: TaskOutcome }),
} satisfies Record<string, z.ZodType>;
export type InstanceEvent = EventOf<typeof instanceEvents>;

export const Instance = z.object({
  id: Id,
  projectId: Id,
  name: z.string(),
  state: InstanceState,
  task: OperationKind.nullable(),
  taskOperationId: Id.nullable(),
  /** The running task's result (a transition or a failure) is already recorded: a retried record is a no-op. */
  taskOutcomeRecorded: z.boolean(),
  flavor: FlavorSnapshot,
  imageId: Id,
  networkId: Id.nullable(),
  hostId: Id.nullable(),
  createdAt: Timestamp,
  launchedAt: Timestamp.nullable(),
  errorReason: z.string().nullable(),
  /** How many events the stream holds (the stream version when the store counts from 1). */
  version: z.number().int().nonnegative(),
});
export type Instance = z.infer<typeof Instance>;

/** A stream with no events is `null`: the instance does not exist. */
export type InstanceDeciderState = Instance | null;

/** The payload an action's completion records, by kind; RESIZE, MIGRATE and SNAPSHOT say what changed. */
export type TransitionResult =
  | { kind: 'START' | 'STOP' | 'PAUSE' | 'UNPAUSE' | 'SUSPEND' | 'RESUME' | 'DELETE' }
  /** The attachment itself is recorded on the volume's stream; the instance only held the task. */
  | { kind: 'ATTACH_VOLUME' | 'DETACH_VOLUME' }
  | { kind: 'REBOOT'; hard: boolean }
  | { kind: 'RESIZE'; flavor: FlavorSnapshot; hostId?: string }
  | { kind: 'MIGRATE'; hostId: string }
  | { kind: 'EVACUATE'; hostId: string }
  | { kind: 'SNAPSHOT'; imageId: string };

export type ActionRequest = { kind: InstanceActionKind; hard?: boolean; targetHostId?: string; flavor?: FlavorSnapshot; imageId?: string };

export type InstanceCommand =
  | { type: 'requestBoot'; data: Omit<z.infer<typeof instanceEvents.InstanceBootRequested>, 'requestedAt'> & { at: string } }
  | { type: 'beginAction'; data: ActionRequest & { operationId: string; at: string } }
  | { type: 'recordScheduled'; data: { operationId: string; hostId: string; at: string } }
  | { type: 'recordLaunched'; data: { operationId: string; hostId: string; launchedAt: string } }
  | { type: 'recordTransition'; data: TransitionResult & { operationId: string; at: string } }
  | { type: 'recordFailure'; data: { operationId: string; code: string; message: string; at: string } }
  | { type: 'finishAction'; data: { operationId: string; outcome: TaskOutcome; at: string } }
  | { type: 'noteHost'; data: z.infer<typeof instanceEvents.InstanceHostNoted> };

const notFound = (id?: string) =>
  id ? new StratusError('NOT_FOUND', `instance ${id} not found`, { id }) : new StratusError('NOT_FOUND', 'instance not found');

/**
 * Why `request` may not begin on `instance` now, or null when it may. Pure and synchronous, so the API
 * can refuse before it starts a workflow; it takes only the fields a read-model row also has.
 * The workflow's own `beginAction` runs the same check against the stream, which is the one that counts.
 */
export function checkAction(
  instance: Pick<Instance, 'id' | 'state' | 'task' | 'taskOperationId' | 'hostId'> | null,
  request: ActionRequest,
): StratusError | null {
  if (!instance || instance.state === 'DELETED') return notFound(instance?.id);
  if (instance.task !== null) {
    return new StratusError(
      'CONFLICT',
      `instance ${instance.id} is busy: operation ${instance.taskOperationId} (${instance.task}) is running`,
      { runningOperation: { id: instance.taskOperationId, kind: instance.task } },
    );
  }
  const action = instanceActionOf(request.kind, request) as InstanceAction;
  if (stateAfter(instance.state, action) === undefined) {
    return new StratusError('CONFLICT', `cannot ${describe(action)} instance ${instance.id}: it is ${instance.state}`, {
      state: instance.state,
      action,
    });
  }
  if (action !== 'DELETE' && instance.hostId === null) {
    return new StratusError('CONFLICT', `cannot ${describe(action)} instance ${instance.id}: it was never placed on a host`, {
      state: instance.state,
      action,
    });
  }
  return null;
}

const describe = (action: InstanceAction) => action.toLowerCase().replace('_', ' ');

/** The instance exists and `operationId` holds its task; otherwise the command is stale or misdirected. */
function requireTask(state: InstanceDeciderState, operationId: string): Instance {
  if (!state) throw notFound();
  if (state.taskOperationId !== operationId) {
    throw new StratusError('CONFLICT', `operation ${operationId} does not hold instance ${state.id}`, {
      runningOperation: state.task ? { id: state.taskOperationId, kind: state.task } : null,
    });
  }
  return state;
}

const transitionEvent = (r: TransitionResult & { operationId: string; at: string }, from: Instance): InstanceEvent | null => {
  const { operationId, at } = r;
  switch (r.kind) {
    case 'START': return { type: 'InstanceStarted', data: { operationId, at } };
    case 'STOP': return { type: 'InstanceStopped', data: { operationId, at } };
    case 'REBOOT': return { type: 'InstanceRebooted', data: { operationId, at, hard: r.hard } };
    case 'PAUSE': return { type: 'InstancePaused', data: { operationId, at } };
    case 'UNPAUSE': return { type: 'InstanceUnpaused', data: { operationId, at } };
    case 'SUSPEND': return { type: 'InstanceSuspended', data: { operationId, at } };
    case 'RESUME': return { type: 'InstanceResumed', data: { operationId, at } };
    case 'RESIZE':
      return {
        type: 'InstanceResized',
        data: { operationId, at, flavor: r.flavor, ...(r.hostId && r.hostId !== from.hostId ? { fromHostId: from.hostId, hostId: r.hostId } : {}) },
      };
    case 'MIGRATE': return { type: 'InstanceMigrated', data: { operationId, at, fromHostId: from.hostId, hostId: r.hostId } };
    case 'SNAPSHOT': return { type: 'InstanceSnapshotted', data: { operationId, at, imageId: r.imageId } };
    case 'EVACUATE': return { type: 'InstanceEvacuated', data: { operationId, at, fromHostId: from.hostId, hostId: r.hostId } };
    case 'DELETE': return { type: 'InstanceDeleted', data: { operationId, at } };
    case 'ATTACH_VOLUME': case 'DETACH_VOLUME': return null;
  }
};

/**
 * Commands repeated with the same operation id (a Temporal activity retried after its append landed)
 * decide no events, so every command is safe to retry.
 */
export function decideInstance(command: InstanceCommand, state: InstanceDeciderState): InstanceEvent[] {
  switch (command.type) {
    case 'requestBoot': {
      const { at, ...data } = command.data;
      if (state) {
        if (state.taskOperationId === data.operationId && state.task === 'BOOT') return [];
        throw new StratusError('CONFLICT', `instance ${state.id} already exists`, { id: state.id });
      }
      return [{ type: 'InstanceBootRequested', data: { ...data, requestedAt: at } }];
    }
    case 'beginAction': {
      const { operationId, kind, hard, at, targetHostId, flavor, imageId } = command.data;
      if (state && state.taskOperationId === operationId && state.task === kind) return [];
      const refusal = checkAction(state, { kind, hard });
      if (refusal) throw refusal;
      return [
        {
          type: 'InstanceTaskStarted',
          data: {
            operationId, kind, at,
            ...(kind === 'REBOOT' ? { hard: hard ?? false } : {}),
            ...(kind === 'MIGRATE' && targetHostId ? { targetHostId } : {}),
            ...(kind === 'RESIZE' && flavor ? { flavor } : {}),
            ...(kind === 'SNAPSHOT' && imageId ? { imageId } : {}),
          },
        },
      ];
    }
    case 'recordScheduled': {
      const { operationId, hostId, at } = command.data;
      const instance = requireTask(state, operationId);
      if (instance.state !== 'BUILDING') throw new StratusError('CONFLICT', `instance ${instance.id} is ${instance.state}, not BUILDING`);
      if (instance.hostId === hostId) return [];
      return [{ type: 'InstanceScheduled', data: { operationId, hostId, at } }];
    }
    case 'recordLaunched': {
      const { operationId, hostId, launchedAt } = command.data;
      const instance = requireTask(state, operationId);
      if (instance.taskOutcomeRecorded) return [];
      if (instance.state !== 'BUILDING') throw new StratusError('CONFLICT', `instance ${instance.id} is ${instance.state}, not BUILDING`);
      return [{ type: 'InstanceLaunched', data: { operationId, hostId, launchedAt } }];
    }
    case 'recordTransition': {
      const instance = requireTask(state, command.data.operationId);
      if (instance.taskOutcomeRecorded) return [];
      if (instance.task !== command.data.kind) {
        throw new StratusError('CONFLICT', `instance ${instance.id} runs ${instance.task}, not ${command.data.kind}`);
      }
      // The instance's own stream decides who has it when its host answers again while it is evacuated:
      // the health check clears the host's note here first, and from then on the evacuation may not take
      // it (it undoes itself); once the evacuation has taken it, the host's fencing destroys the VM left there.
      if (command.data.kind === 'EVACUATE' && !hostNotedDown(instance)) {
        throw new StratusError('CONFLICT', `host ${instance.hostId} answers again: instance ${instance.id} stays there`, { hostId: instance.hostId });
      }
      const event = transitionEvent(command.data, instance);
      return event ? [event] : [];
    }
    case 'recordFailure': {
      const { operationId, code, message, at } = command.data;
      const instance = requireTask(state, operationId);
      if (instance.taskOutcomeRecorded) return [];
      return [{ type: 'InstanceFailed', data: { operationId, code, message, at } }];
    }
    case 'noteHost': {
      if (!state || state.state === 'DELETED' || state.hostId !== command.data.hostId) return [];
      if (command.data.down === hostNotedDown(state)) return [];
      return [{ type: 'InstanceHostNoted', data: command.data }];
    }
    case 'finishAction': {
      const { operationId, outcome, at } = command.data;
      if (!state) throw notFound();
      // Already finished (or never held the task): nothing left to release.
      if (state.taskOperationId !== operationId) return [];
      return [{ type: 'InstanceTaskFinished', data: { operationId, outcome, at } }];
    }
  }
}

const HOST_DOWN = 'HOST_DOWN: ';

/** The health check noted the instance's host DOWN and has not heard from it since. */
const hostNotedDown = (instance: Instance): boolean => instance.errorReason?.startsWith(HOST_DOWN) ?? false;

/** The state each transition event leaves, read off the same table `decide` checks against. */
const stateOf: Partial<Record<InstanceEvent['type'], InstanceState>> = {
  InstanceLaunched: 'RUNNING',
  InstanceStarted: 'RUNNING',
  InstanceStopped: 'STOPPED',
  InstanceRebooted: 'RUNNING',
  InstancePaused: 'PAUSED',
  InstanceUnpaused: 'RUNNING',
  InstanceSuspended: 'SUSPENDED',
  InstanceResumed: 'RUNNING',
  InstanceFailed: 'ERROR',
  InstanceDeleted: 'DELETED',
};

export function evolveInstance(state: InstanceDeciderState, event: InstanceEvent): InstanceDeciderState {
  if (event.type === 'InstanceBootRequested') {
    const d = event.data;
    return {
      id: d.instanceId,
      projectId: d.projectId,
      name: d.name,
      state: 'BUILDING',
      // A boot holds the instance from its first event: nothing else may act on it while it builds.
      task: 'BOOT',
      taskOperationId: d.operationId,
      taskOutcomeRecorded: false,
      flavor: d.flavor,
      imageId: d.imageId,
      networkId: d.networkId,
      hostId: null,
      createdAt: d.requestedAt,
      launchedAt: null,
      errorReason: null,
      version: 1,
    };
  }
  if (!state) return state;
  const next: Instance = { ...state, version: state.version + 1 };
  const newState = stateOf[event.type];
  if (newState) {
    next.state = newState;
    next.taskOutcomeRecorded = true;
  }
  switch (event.type) {
    case 'InstanceTaskStarted':
      return { ...next, task: event.data.kind, taskOperationId: event.data.operationId, taskOutcomeRecorded: false };
    case 'InstanceScheduled':
      return { ...next, hostId: event.data.hostId };
    case 'InstanceLaunched':
      return { ...next, hostId: event.data.hostId, launchedAt: event.data.launchedAt, errorReason: null };
    case 'InstanceRebooted':
      // A hard reboot is how an ERROR instance recovers, so the old reason goes with it.
      return { ...next, errorReason: null };
    case 'InstanceResized':
      return { ...next, flavor: event.data.flavor, hostId: event.data.hostId ?? next.hostId, taskOutcomeRecorded: true };
    case 'InstanceMigrated':
      return { ...next, hostId: event.data.hostId, taskOutcomeRecorded: true };
    case 'InstanceSnapshotted':
      return { ...next, taskOutcomeRecorded: true };
    case 'InstanceEvacuated':
      return { ...next, hostId: event.data.hostId, errorReason: null, taskOutcomeRecorded: true };
    case 'InstanceHostNoted':
      if (event.data.down) return { ...next, errorReason: `${HOST_DOWN}${event.data.reason}` };
      return { ...next, errorReason: next.errorReason?.startsWith(HOST_DOWN) ? null : next.errorReason };
    case 'InstanceFailed':
      return { ...next, errorReason: `${event.data.code}: ${event.data.message}` };
    case 'InstanceTaskFinished':
      return { ...next, task: null, taskOperationId: null, taskOutcomeRecorded: false };
    default:
      return next;
  }
}

export const instanceDecider: Decider<InstanceDeciderState, InstanceCommand, InstanceEvent> = {
  decide: decideInstance,
  evolve: evolveInstance,
  initialState: () => null,
};
