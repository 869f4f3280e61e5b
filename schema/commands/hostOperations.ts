import { randomUUID } from 'node:crypto';
import { operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { decideOperation, operationDecider, type Operation } from '../../domain/operation.js';
import type { Runtime } from '../../server/runtime.js';
import { appendNew, commandMetadata, now, startOrCompensate } from './operations.js';

/**
 * Opens an operation on a whole host (DRAIN_HOST, EVACUATE_HOST) and starts its workflow. It belongs to
 * the caller's project (an admin's); the children it starts belong to their instances' projects.
 */
export async function startHostOperation(rt: Runtime, caller: Caller, hostId: string, kind: 'DRAIN_HOST' | 'EVACUATE_HOST'): Promise<Operation> {
  const operationId = randomUUID();
  const events = decideOperation(
    { type: 'request', data: { operationId, kind, resourceId: hostId, projectId: caller.projectId, actor: caller, at: now() } },
    null,
  );
  await appendNew(rt, operationStream(operationId), events, 'noStream', commandMetadata(caller, operationId));
  await startOrCompensate(rt, kind, { operationId, instanceId: hostId, actor: caller.tokenId, attempt: 1 });
  return events.reduce(operationDecider.evolve, null as Operation | null)!;
}
