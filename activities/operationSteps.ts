import { ApplicationFailure } from '@temporalio/common';
import { isStratusError } from '../domain/errors.js';
import { operationStream } from '../domain/events.js';
import { decideOperation, operationDecider, type Operation, type OperationEvent } from '../domain/operation.js';
import { AgentError, type Progress } from '../hostagent/driver.js';
import type { Runtime } from '../server/runtime.js';
import { inSpan } from '../server/telemetry.js';
import { decideAndAppend, operationMetadata, type Folded } from './events.js';

/**
 * What every activity of an operation's workflow is given: which operation, on whose behalf, and which
 * run. `attempt` counts `retryOperation` runs (1 for the first), so a retried run's events and agent calls
 * get fresh ids and keys instead of replaying the failed run's outcomes.
 */
export interface OperationContext {
  operationId: string;
  instanceId: string;
  actor: string;
  attempt: number;
  workflowId: string;
  runId: string;
  /**
   * Set in a run made by resetOperation (Temporal reset): that run's id. The steps it re-runs must not
   * reuse the failed run's keys, or the store and the agent's journal would answer with the failure.
   */
  resetRunId?: string;
}

/** The name of one logical write of this run; event ids derive from it. */
export const writeKey = (ctx: OperationContext, ...parts: string[]): string =>
  [ctx.operationId, `a${ctx.attempt}`, ...(ctx.resetRunId ? [`reset-${ctx.resetRunId}`] : []), ...parts].join(':');

/** The host agent's idempotency key for `step`: `<operationId>:<step>`, plus the attempt on a retried run. */
export const agentKey = (ctx: OperationContext, step: string): string =>
  (ctx.attempt === 1 ? `${ctx.operationId}:${step}` : `${ctx.operationId}:${step}:a${ctx.attempt}`) + (ctx.resetRunId ? `:reset-${ctx.resetRunId}` : '');

export const metadataOf = (ctx: OperationContext) => operationMetadata(ctx);

type OperationFolded = Folded<Operation | null>;

/** Decides commands on the operation stream in order and appends what they decide as one batch. */
export function recordOnOperation(
  rt: Pick<Runtime, 'store'>,
  ctx: OperationContext,
  key: string,
  commands: (op: Operation | null) => Parameters<typeof decideOperation>[0][],
  known?: OperationFolded,
): Promise<OperationFolded> {
  return decideAndAppend<Operation | null, OperationEvent>(
    rt,
    operationStream(ctx.operationId),
    operationDecider,
    (state) => {
      const events: OperationEvent[] = [];
      let s = state;
      for (const c of commands(state)) {
        for (const e of decideOperation(c, s)) {
          events.push(e);
          s = operationDecider.evolve(s, e);
        }
      }
      return events;
    },
    { key, metadata: metadataOf(ctx), rounds: 10, ...(known ? { known } : {}) },
  );
}

const now = () => new Date().toISOString();

/**
 * Progress of a long step (a migration's transfer, an image sent to a host) kept on the operation's
 * step: once per fifth of the way (never for every agent report), each under its own name-based key
 * so a retried activity records nothing twice.
 */
export function stepProgress(rt: Pick<Runtime, 'store'>, ctx: OperationContext, step: string) {
  let lastBucket = -1;
  let chain: Promise<unknown> = Promise.resolve();
  const record = (p: Progress, key: string) => {
    chain = chain.then(() =>
      recordOnOperation(rt, ctx, writeKey(ctx, step, 'progress', key), () => [
        { type: 'progressStep', data: { name: step, ...(p.percent !== undefined ? { percent: p.percent } : {}), message: p.message.slice(0, 500), at: now() } },
      ]).catch(() => undefined),
    );
  };
  return {
    report(p: Progress) {
      const bucket = p.percent === undefined ? lastBucket : Math.floor(p.percent / 20);
      if (bucket <= lastBucket && lastBucket >= 0) return;
      lastBucket = Math.max(bucket, 0);
      record(p, String(lastBucket));
    },
    /** The step's outcome in words, always recorded last. */
    final: (p: Progress) => record(p, 'final'),
    /** Waits for the reports already sent, so none lands after the step's finish. */
    settled: () => chain,
  };
}

/**
 * A failure as Temporal should see it: domain refusals and agent errors that cannot heal are
 * non-retryable, typed with their code (the workflow records that code on the operation); a lost agent
 * connection or a database hiccup stays retryable.
 */
export function asActivityFailure(e: unknown): unknown {
  if (e instanceof ApplicationFailure) return e;
  if (e instanceof AgentError) {
    return ApplicationFailure.create({ message: e.message, type: e.code, nonRetryable: !e.retryable });
  }
  // A version conflict that outlived its rounds is contention, not a refusal: try again later.
  if (isStratusError(e) && e.name !== 'WrongExpectedVersion') {
    return ApplicationFailure.create({ message: e.message, type: e.code, nonRetryable: true, details: [e.details] });
  }
  return e;
}

const failureOf = (e: unknown) => {
  const f = asActivityFailure(e);
  return f instanceof ApplicationFailure ? f : undefined;
};

/**
 * Runs one step of the runbook: records OperationStarted (the first step of a run) and
 * OperationStepStarted, does the work, records OperationStepFinished, and, for the last step,
 * OperationSucceeded in the same append. A step that fails for good is recorded FAILED here; one that will
 * be retried stays RUNNING (the retry's start is then a no-op), and recordFailed closes it if retries run out.
 */
export function runStep<T>(
  rt: Pick<Runtime, 'store'>,
  ctx: OperationContext,
  step: string,
  work: () => Promise<T>,
  options: { succeedsOperation?: boolean } = {},
): Promise<T> {
  // A span per step, so a trace shows the operation's steps even where one activity runs several
  // (setUpOnHost); the agent calls made in the step are its children.
  return inSpan(`step ${step}`, { attributes: { 'stratus.operation_id': ctx.operationId, 'stratus.step': step } }, () => recordedStep(rt, ctx, step, work, options));
}

async function recordedStep<T>(
  rt: Pick<Runtime, 'store'>,
  ctx: OperationContext,
  step: string,
  work: () => Promise<T>,
  options: { succeedsOperation?: boolean },
): Promise<T> {
  const succeeded = (op: Operation | null) => op?.status === 'SUCCEEDED' && op.runId === ctx.runId;
  const started = await recordOnOperation(rt, ctx, writeKey(ctx, step, 'started'), (op) =>
    succeeded(op)
      ? []
      : [
          { type: 'start', data: { runId: ctx.runId, at: now() } },
          { type: 'startStep', data: { name: step, at: now() } },
        ],
  );
  // The last step retried after its append landed (the worker died before reporting): the work is
  // idempotent, the record is complete.
  if (succeeded(started.state)) return work();
  let result: T;
  try {
    result = await work();
  } catch (e) {
    const failure = failureOf(e);
    if (failure?.nonRetryable) {
      await recordOnOperation(rt, ctx, writeKey(ctx, step, 'failed'), () => [
        { type: 'finishStep', data: { name: step, status: 'FAILED', error: { code: failure.type ?? 'INTERNAL', message: failure.message }, at: now() } },
      ]);
    }
    throw asActivityFailure(e);
  }
  await recordOnOperation(
    rt,
    ctx,
    writeKey(ctx, step, 'finished'),
    () => [
      { type: 'finishStep', data: { name: step, status: 'SUCCEEDED', at: now() } },
      ...(options.succeedsOperation ? [{ type: 'succeed' as const, data: { at: now() } }] : []),
    ],
    started,
  );
  return result;
}

/** Closes every step still RUNNING as FAILED and fails the operation, in one append. */
export function failOperation(rt: Pick<Runtime, 'store'>, ctx: OperationContext, error: { code: string; message: string }, key = writeKey(ctx, 'failed')) {
  return recordOnOperation(rt, ctx, key, (op) => op?.status === 'SUCCEEDED' ? [] : [
    ...(op?.steps ?? [])
      .filter((s) => s.status === 'RUNNING')
      .map((s) => ({ type: 'finishStep' as const, data: { name: s.name, status: 'FAILED' as const, error, at: now() } })),
    { type: 'fail', data: { ...error, at: now() } },
  ]);
}
