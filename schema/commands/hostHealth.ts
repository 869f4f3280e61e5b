import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { readHosts } from '../../activities/placement.js';
import type { Runtime } from '../../server/runtime.js';
import type { HostHealthInput } from '../../workflows/hostHealth.js';

/** The workflow id of a host's health check: one per host, so starting it twice is harmless. */
export const hostHealthWorkflowId = (hostId: string) => `host-health-${hostId}`;

/**
 * Starts the host's health check (workflows/hostHealth.ts) unless it already runs; a no-op when the
 * deployment does not watch hosts. The check is a durable workflow, so it survives controller restarts.
 */
export async function watchHost(rt: Runtime, hostId: string): Promise<void> {
  const health = rt.config.hostHealth;
  if (!health) return;
  const input: HostHealthInput = { hostId, ...health };
  try {
    await rt.temporal.workflow.start('hostHealth', { taskQueue: rt.config.taskQueue, workflowId: hostHealthWorkflowId(hostId), args: [input] });
  } catch (e) {
    if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
  }
}

/** Every registered host watched: for a controller started on hosts registered before health checks existed. */
export async function watchAllHosts(rt: Runtime): Promise<void> {
  for (const host of await readHosts(rt)) await watchHost(rt, host.id);
}
