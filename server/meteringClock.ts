import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { MeteringClockInput } from '../workflows/meteringClock.js';
import { CHANGES_CHANNEL, type Change } from '../projections/index.js';
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

/** Starts one host's pollster, or leaves the one running alone. */
async function startMeterPoller(rt: Runtime, hostId: string, intervalMs?: number): Promise<void> {
  try {
    await rt.temporal.workflow.start('pollHostMeters', {
      workflowId: meterPollerId(hostId),
      taskQueue: rt.config.taskQueue,
      args: [{ hostId, ...(intervalMs ? { intervalMs } : {}) }],
    });
  } catch (e) {
    if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
  }
}

/**
 * Keeps a pollster on every host, including hosts registered later. Every claim and heartbeat is a host
 * change, so a change of a host this process has already started a pollster for costs a set lookup and
 * nothing else; only a host it has not seen yet starts one (hosts are never removed: a pollster runs
 * for as long as its workflow does). It listens before it lists, so a host registered in between is
 * not missed.
 */
export async function keepMeterPollers(rt: Runtime, intervalMs?: number): Promise<() => Promise<void>> {
  const started = new Set<string>();
  const keep = (hostId: string): Promise<void> => {
    if (started.has(hostId)) return Promise.resolve();
    started.add(hostId);
    return startMeterPoller(rt, hostId, intervalMs).catch((e: unknown) => {
      // Forgotten, so the host's next change tries again.
      started.delete(hostId);
      throw e;
    });
  };
  const stop = await rt.db.listen(CHANGES_CHANNEL, (payload) => {
    if (!payload.includes('"kind":"host"')) return;
    const change = JSON.parse(payload) as Change;
    if (change.kind !== 'host') return;
    void keep(change.id).catch((e: unknown) => log.warn({ err: e, hostId: change.id }, 'could not start a meter pollster'));
  });
  try {
    const hosts = await rt.db.query<{ id: string }>('SELECT id FROM rm_hosts');
    for (const { id } of hosts) await keep(id);
  } catch (e) {
    await stop();
    throw e;
  }
  return stop;
}
