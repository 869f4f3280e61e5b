import { continueAsNew, proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

export interface PollHostMetersInput {
  hostId: string;
  /** Between two readings; a minute by default (Ceilometer's default polling interval is five). */
  intervalMs?: number;
}

const { sampleHost } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
});

const READINGS_PER_RUN = 500;

/**
 * The pollster of one host (Ceilometer's compute agent, run from the controller): reads every VM's
 * counters over the agent's SSH connection on an interval and stores them as samples. One durable
 * workflow per host (`meters-<hostId>`), so polling survives any process and never runs twice.
 */
export async function pollHostMeters(input: PollHostMetersInput): Promise<void> {
  const intervalMs = input.intervalMs ?? 60_000;
  for (let i = 0; i < READINGS_PER_RUN; i++) {
    await sampleHost(input.hostId);
    await sleep(intervalMs);
  }
  await continueAsNew<typeof pollHostMeters>(input);
}
