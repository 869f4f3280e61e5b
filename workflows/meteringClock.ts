import { continueAsNew, proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

export interface MeteringClockInput {
  /** How often to tick: an hour in production, so each tick closes the hour that just ended. */
  periodMs?: number;
  /**
   * How long after the boundary to tick. An event of the last hour that is appended after the tick
   * (its workflow was slow) would find its interval already closed at the boundary; the grace makes
   * that rare, and the most it can cost is the grace's worth of one interval.
   */
  graceMs?: number;
}

const { recordClockTick } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

// Bounds the history: the run starts over as a new one with the same input every so many ticks.
const TICKS_PER_RUN = 200;

/**
 * The metering clock: a durable Temporal timer that appends a UsageClockTicked event shortly after
 * each period boundary, so intervals still open (an instance running for days) are closed into hourly
 * records by an event in the log, not by a cron on one machine. One per deployment (workflow id
 * `stratus-metering-clock`); a second starter joins the running one.
 */
export async function meteringClock(input: MeteringClockInput = {}): Promise<void> {
  const periodMs = input.periodMs ?? 3_600_000;
  const graceMs = input.graceMs ?? 60_000;
  for (let i = 0; i < TICKS_PER_RUN; i++) {
    // Workflow time is replay-safe: Date.now() inside a workflow is the time of the task being replayed.
    const now = Date.now();
    const nextBoundary = Math.floor((now - graceMs) / periodMs) * periodMs + periodMs;
    await sleep(Math.max(1, nextBoundary + graceMs - now));
    await recordClockTick(new Date(Date.now()).toISOString());
  }
  await continueAsNew<typeof meteringClock>(input);
}
