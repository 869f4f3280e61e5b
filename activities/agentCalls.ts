import { Context } from '@temporalio/activity';
import { currentTraceparent } from '../server/telemetry.js';
import type { Progress } from '../hostagent/driver.js';
import type { MethodName, ParamsOf, ResultOf } from '../hostagent/protocol.js';
import type { Runtime } from '../server/runtime.js';
import { readHostEndpoint } from './placement.js';

/** The running activity's context, or undefined when called outside one (a command, a test). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * One call to a host's agent over the worker's shared SSH connection. The agent's progress becomes the
 * activity's heartbeat, so a long createVm stays alive while a dead worker's activity is noticed quickly.
 * Mutating calls carry the step's idempotency key: a retry gets the first outcome instead of a second VM.
 */
export async function callAgent<M extends MethodName>(
  rt: Pick<Runtime, 'store' | 'agents'>,
  hostId: string,
  method: M,
  params: ParamsOf<M>,
  options: { idempotencyKey?: string; timeoutMs?: number; onProgress?: (p: Progress) => void } = {},
): Promise<ResultOf<M>> {
  const { host, port, fingerprint } = await readHostEndpoint(rt, hostId);
  const client = rt.agents.get(hostId, { host, port, fingerprint });
  const activity = activityContext();
  const traceparent = currentTraceparent();
  const { onProgress, ...rest } = options;
  return client.call(method, params, {
    ...rest,
    ...(traceparent ? { traceparent } : {}),
    ...(activity
      ? {
          signal: activity.cancellationSignal,
          onProgress: (p: Progress) => {
            activity.heartbeat(p);
            onProgress?.(p);
          },
        }
      : onProgress ? { onProgress } : {}),
  });
}
