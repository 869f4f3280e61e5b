import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { readHosts } from '../../activities/placement.js';
import { CHANGES_CHANNEL } from '../../projections/projection.js';
import { componentLog } from '../../server/log.js';
import type { Runtime } from '../../server/runtime.js';
import type { HostHealthInput } from '../../workflows/hostHealth.js';

const log = componentLog('host-health');

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
export async function watchAllHosts(rt: Runtime): Promise<string[]> {
  const ids = (await readHosts(rt)).map((h) => h.id);
  for (const id of ids) await watchHost(rt, id);
  return ids;
}

/**
 * What the controller's processes (`stratus dev`, the api and worker roles) run at start: every registered
 * host gets its health check (a host registered while checks were off, or on a Temporal that has since
 * lost its workflows, is watched from now on), and so does every host added while the process runs, even
 * by a process whose own start of it failed. Starting a check that runs is a no-op, so any number of
 * processes may do this at once. Returns the stop of the listener.
 */
export async function keepHostsWatched(rt: Runtime): Promise<() => Promise<void>> {
  if (!rt.config.hostHealth) return async () => {};
  const watched = new Set(await watchAllHosts(rt));
  return rt.db.listen(CHANGES_CHANNEL, (payload) => {
    let change: { kind?: string; id?: string };
    try {
      change = JSON.parse(payload) as typeof change;
    } catch {
      return;
    }
    if (change.kind !== 'host' || !change.id || watched.has(change.id)) return;
    const id = change.id;
    watchHost(rt, id).then(
      () => watched.add(id),
      (e: unknown) => log.warn({ err: e, hostId: id }, 'could not start the health check of a host'),
    );
  });
}
