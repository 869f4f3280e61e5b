import { randomUUID } from 'node:crypto';
import { StratusError } from '../../domain/errors.js';
import { operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { decideOperation, operationDecider, operationIdFor, type Operation, type OperationKind } from '../../domain/operation.js';
import { WrongExpectedVersion } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';
import { appendNew, commandMetadata, now, readOperation, startOrCompensate, type LifecycleResult } from './operations.js';

/**
 * Records OperationRequested for a resource that is not an instance (an address, a security group) and
 * starts its workflow; `extra` is what that workflow's input carries besides the context. A repeated clientRequestId
 * answers with the first operation, as every lifecycle command does.
 */
export async function startResourceOperation(
  rt: Runtime,
  caller: Caller,
  kind: OperationKind,
  resourceId: string,
  projectId: string,
  extra: object,
  clientRequestId: string | undefined,
): Promise<LifecycleResult> {
  const operationId = operationIdFor({ projectId: caller.projectId, clientRequestId: clientRequestId ?? null, randomId: randomUUID() });
  const repeat = async () => {
    const op = await readOperation(rt, operationId);
    if (!op) return undefined;
    if (op.kind !== kind || op.projectId !== projectId) {
      throw new StratusError('CONFLICT', 'this clientRequestId was already used for another request', { operationId: op.id });
    }
    return { operation: op };
  };
  if (clientRequestId) {
    const first = await repeat();
    if (first) return first;
  }
  const events = decideOperation(
    { type: 'request', data: { operationId, kind, resourceId, projectId, actor: caller, at: now(), ...(clientRequestId ? { clientRequestId } : {}) } },
    null,
  );
  try {
    await appendNew(rt, operationStream(operationId), events, 'noStream', commandMetadata(caller, operationId));
  } catch (e) {
    if (e instanceof WrongExpectedVersion) {
      const first = await repeat();
      if (first) return first;
    }
    throw e;
  }
  // The context's instanceId is the operation's resource here (OperationContext predates other resources).
  const input = { operationId, instanceId: resourceId, actor: caller.tokenId, attempt: 1, ...extra };
  await startOrCompensate(rt, kind, input);
  return { operation: events.reduce(operationDecider.evolve, null as Operation | null)! };
}

