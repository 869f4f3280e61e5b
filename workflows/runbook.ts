import { ActivityFailure, ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
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
  /** MIGRATE only: the host asked for; absent, the scheduler picks. */
  targetHostId?: string;
  /** RESIZE only: the flavor asked for. */
  flavorId?: string;
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
