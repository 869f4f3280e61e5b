import { ParentClosePolicy, continueAsNew, patched, proxyActivities, sleep, startChild } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { OperationInput } from './runbook.js';

export interface HostHealthInput {
  hostId: string;
  intervalMs: number;
  missesToDown: number;
  evacuate: boolean;
  /** Checks missed in a row, carried across continue-as-new. */
  misses?: number;
}

/** A probe is one try: a miss is information, not something to retry. */
const { probeHost } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 1 } });
const records = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 30 },
});

/** Checks per run before continue-as-new, so the history stays short however long the host lives. */
const CHECKS_PER_RUN = 200;

/**
 * Since this patch a run's first answer always goes to hostAnswered (a no-op unless the health check had
 * turned the host DOWN); runs recorded before it only did after misses of their own
 * (`test/histories/hostHealth.v1.json`).
 */
export const HEALTH_RUN_RECONCILES = 'health-run-reconciles-first-answer';

/**
 * One per host, for as long as it is registered: ask its agent on an interval (a durable timer); after
 * `missesToDown` misses in a row the host turns DOWN and, with evacuate on, an EVACUATE_HOST operation
 * starts (a child left running on its own); when it answers again its stale VMs are fenced and it turns UP.
 * The first answer of each run does that too, whatever the misses, so a run started on a DOWN host (a
 * lost check started again by watchHost) brings it back.
 */
export async function hostHealth(input: HostHealthInput): Promise<never> {
  let misses = input.misses ?? 0;
  // A run knows only the misses it counted (or was handed): a host an earlier run turned DOWN, one this
  // run was started on after its check was lost, would never come UP again from misses alone.
  let reconciled = !patched(HEALTH_RUN_RECONCILES);
  const timeoutMs = Math.max(1000, Math.min(input.intervalMs * 2, 10_000));
  for (let check = 0; check < CHECKS_PER_RUN; check++) {
    if (await probeHost(input.hostId, timeoutMs)) {
      if (misses >= input.missesToDown || !reconciled) await records.hostAnswered(input.hostId);
      reconciled = true;
      misses = 0;
    } else if (++misses === input.missesToDown) {
      const { outage } = await records.hostLost(input.hostId, misses);
      if (input.evacuate && outage > 0) {
        const op = await records.openEvacuation(input.hostId, outage);
        await startChild('evacuateHost', {
          workflowId: op.workflowId,
          args: [{ operationId: op.operationId, instanceId: input.hostId, actor: 'system:host-health', attempt: 1 } satisfies OperationInput],
          parentClosePolicy: ParentClosePolicy.ABANDON,
        });
      }
    }
    await sleep(input.intervalMs);
  }
  return continueAsNew<typeof hostHealth>({ ...input, misses });
}
