import { ActivityFailure, ApplicationFailure, patched, proxyActivities, proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities, OperationContext } from '../activities/index.js';

/** What a command passes to an operation's workflow: everything else is read from the streams. */
export interface OperationInput {
  operationId: string;
  instanceId: string;
  /** The token id of the caller, recorded as the actor of every event the run appends. */
  actor: string;
  /** 1 for the first run; retryOperation starts run n+1 so its events and agent calls get fresh keys. */
  attempt: number;
  /** REBOOT only. */
  hard?: boolean;
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
 * Steps that only read and append events (placement, recording a state) as local activities: they run
 * in the worker that runs the workflow task, inside that task, instead of a round trip through the
 * server's task queue each. That is most of a boot's time on an idle cluster (measured: about 80 ms per
 * step on the dev server). They are as safe as the others to repeat: their event ids are name-based,
 * so a local activity re-run after a worker crash appends nothing twice.
 */
const localSteps = proxyLocalActivities<Activities>({
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

/** Undo steps try harder: a leaked claim or VM outlives the operation. */
export const undoSteps = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { ...retry, maximumAttempts: 30 },
});

export function operationContext(input: OperationInput): OperationContext {
  const { workflowId, runId } = workflowInfo();
  return { operationId: input.operationId, instanceId: input.instanceId, actor: input.actor, attempt: input.attempt, workflowId, runId };
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
