import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { MeteringClockInput } from '../workflows/meteringClock.js';
import { CHANGES_CHANNEL } from '../projections/index.js';
import { componentLog } from './log.js';
import type { Runtime } from './runtime.js';

const log = componentLog('metering');

export const METERING_CLOCK_WORKFLOW_ID = 'stratus-metering-clock';

/** Starts the deployment's metering clock on the runtime's task queue, or leaves the one running alone. */
export async function ensureMeteringClock(rt: Runtime, input: MeteringClockInput = {}, workflowId = METERING_CLOCK_WORKFLOW_ID): Promise<void> {
  try {
    await rt.temporal.workflow.start('meteringClock', { workflowId, taskQueue: rt.config.taskQueue, args: [input] });
  } catch (e) {
    if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
  }
}

export const meterPollerId = (hostId: string) => `meters-${hostId}`;

/** Starts the pollster of every registered host that has none running (a durable workflow per host). */
export async function ensureMeterPollers(rt: Runtime, intervalMs?: number): Promise<void> {
  const hosts = await rt.db.query<{ id: string }>('SELECT id FROM rm_hosts');
  for (const { id } of hosts) {
    try {
      await rt.temporal.workflow.start('pollHostMeters', {
        workflowId: meterPollerId(id),
        taskQueue: rt.config.taskQueue,
        args: [{ hostId: id, ...(intervalMs ? { intervalMs } : {}) }],
      });
    } catch (e) {
      if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
    }
  }
}

/** Keeps a pollster on every host, including hosts registered later: each host change checks again. */
export async function keepMeterPollers(rt: Runtime, intervalMs?: number): Promise<() => Promise<void>> {
  await ensureMeterPollers(rt, intervalMs);
  return rt.db.listen(CHANGES_CHANNEL, (payload) => {
    if (!payload.includes('"kind":"host"')) return;
    void ensureMeterPollers(rt, intervalMs).catch((e: unknown) => log.warn({ err: e }, 'could not start a meter pollster'));
  });
}
