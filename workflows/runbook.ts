import { ActivityFailure, ApplicationFailure, condition, defineSignal, patched, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities, OperationContext } from '../activities/index.js';

/** What a command passes to an operation's workflow: everything else is read from the streams. */
export interface OperationInput {
  operationId: string;
  /** The operation's resource: an instance, or for host operations (drain, evacuate) the host. */
  instanceId: string;
  /** The token id of the caller, recorded as the actor of every event the run appends. */
  actor: string;
  /** 1 for the first run; retryOperation starts run n+1 so its events and agent calls get fresh keys. */
  attempt: number;
  /** REBOOT only. */
  hard?: boolean;
  /**
   * How long a failed run waits for an operator before it undoes its steps (STRATUS_FAILURE_HOLD):
   * the window in which resetOperation can resume it. Absent or 0: undo at once.
   */
  failureHoldMs?: number;
  /** BOOT only: false when the image has no bytes to send to the host (a registered image). Absent: fetch. */
  fetchImage?: boolean;
  /** MIGRATE only: the host asked for; absent, the scheduler picks. */
  targetHostId?: string;
  /** RESIZE only: the flavor asked for. */
  flavorId?: string;
  /** SNAPSHOT only: the image the snapshot becomes (QUEUED, made by the command). */
  imageId?: string;
}

const retry = { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds' } as const;

/**
 * The runbook's steps. Every activity heartbeats (activities/index.ts), so a dead worker's step moves to
 * another worker within heartbeatTimeout. Agent outages are retried with backoff; refusals (NO_VALID_HOST,
 * a hypervisor error) are non-retryable and end the run.
 */
export const steps = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { ...retry, maximumAttempts: 10 },
});

/**
 * Steps that only read and append events (placement, address allocation, recording a state) as local activities: they run
 * in the worker that runs the workflow task, inside that task, instead of a round trip through the
 * server's task queue each. That is most of a boot's time on an idle cluster (measured: about 80 ms per
 * step on the dev server). They are as safe as the others to repeat: their event ids are name-based,
 * so a local activity re-run after a worker crash appends nothing twice.
 */
export const localSteps = proxyLocalActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { ...retry, maximumAttempts: 10 },
});

/**
 * The proxy for event-only steps. Histories recorded before these steps became local scheduled them
 * as ordinary activities; `patched` keeps those replaying on the path they took (Temporal's versioning).
 */
export function eventSteps(): typeof steps {
  return patched(EVENT_STEPS_LOCAL) ? localSteps : steps;
}
const EVENT_STEPS_LOCAL = 'event-steps-as-local-activities';

/**
 * A cold move (migration of a stopped instance, resize onto another host) copies the disk to the target
 * (`copyDisk`) since this patch; runs recorded before it defined the VM on the target and removed it from
 * the source with nothing between, and replay on that path.
 */
export const COLD_MOVE_COPIES_DISK = 'cold-move-copies-disk';

/**
 * A move (migration, resize onto another host, evacuation) of an instance whose image has bytes fetches
 * it to the target (`fetchImage`) before the VM is made there, since this patch. Asked only when the
 * plan says there is an image to fetch, so a move of a registered image's instance records no marker
 * and runs as it always did; moves recorded before it replay without the step.
 */
export const MOVES_FETCH_IMAGE = 'moves-fetch-image';

/**
 * A migration claims its target in a local activity (it only appends events), and a live one with
 * nothing to fetch plugs, receives and sends in one activity (`moveLive`) and finishes in another
 * (`finishMigration`), each step still its own, since this patch: four trips through the engine fewer.
 * Runs recorded before it, and runs held for an operator's reset (a reset resumes at the failed step's
 * own activity), take one activity per step.
 */
export const MIGRATION_STEPS_COMPOSED = 'migration-steps-composed';

/** Undo steps try harder: a leaked claim or VM outlives the operation. */
export const undoSteps = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { ...retry, maximumAttempts: 30 },
});

export function operationContext(input: OperationInput): OperationContext {
  const { workflowId, runId, originalExecutionRunId } = workflowInfo();
  // A Temporal reset keeps the original run id on the started event and gives the new run its own.
  const reset = runId !== originalExecutionRunId ? { resetRunId: runId } : {};
  return { operationId: input.operationId, instanceId: input.instanceId, actor: input.actor, attempt: input.attempt, workflowId, runId, ...reset };
}

/** Sent by an operator who will not reset a held run: undo now instead of at the end of the hold. */
export const abandonSignal = defineSignal('abandon');

/**
 * A failed run, before it undoes anything: the operation is recorded FAILED at once (callers see the
 * failure, the step and its code), but the world is left as the steps made it for `failureHoldMs`.
 * Within that window resetOperation resets the workflow to just before the failed step, and this run
 * (parked here, its undo not begun) is replaced by one that carries on from there; at the end of the
 * window, or on the abandon signal, the caller goes on to undo as usual.
 */
export async function holdForOperator(ctx: OperationContext, input: OperationInput, err: unknown): Promise<void> {
  if (!input.failureHoldMs) return;
  let abandoned = false;
  setHandler(abandonSignal, () => {
    abandoned = true;
  });
  await undoSteps.recordHeld(ctx, failureOf(err));
  await condition(() => abandoned, input.failureHoldMs);
}

/** The contract-style code and message of whatever ended a run. */
export function failureOf(err: unknown): { code: string; message: string } {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  if (cause instanceof ApplicationFailure) return { code: cause.type ?? 'INTERNAL', message: cause.message };
  return { code: 'INTERNAL', message: cause instanceof Error ? cause.message : String(cause) };
}

/** Undo actions, run newest first (the saga pattern): each step that may have changed the world adds its undo before it runs. */
export class Compensations {
  private readonly undos: Array<() => Promise<void>> = [];
  add(undo: () => Promise<void>): void {
    this.undos.push(undo);
  }
  async runInReverse(): Promise<void> {
    for (const undo of this.undos.reverse()) await undo();
  }
}

/**
 * Records the failure (instance, operation) and fails the workflow too, so Temporal lists it among
 * failed executions and `retryOperation` may start the same workflow id again.
 */
export async function recordFailure(ctx: OperationContext, err: unknown, options: { instanceError: boolean }): Promise<never> {
  const failure = failureOf(err);
  await undoSteps.recordFailed(ctx, { ...failure, instanceError: options.instanceError });
  throw ApplicationFailure.create({ message: failure.message, type: failure.code, nonRetryable: true });
}
