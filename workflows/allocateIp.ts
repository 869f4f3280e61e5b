import { recordAddressFailure, type AddressOperationInput } from './addressRunbook.js';
import { Compensations, eventSteps, operationContext, steps, undoSteps } from './runbook.js';

/**
 * Allocate IP: take the network's next free address (IPAM on the network's stream); a FLOATING one asked
 * for an instance is then associated with it. If the association fails the address goes back.
 */
export async function allocateIp(input: AddressOperationInput): Promise<void> {
  const ctx = operationContext(input);
  const { address } = input;
  const associate = address.kind === 'FLOATING' && address.instanceId !== undefined;
  const undo = new Compensations();
  try {
    // IPAM only appends to the network's stream: a local activity, as in a boot (runbook.ts, eventSteps).
    await eventSteps().allocateAddress(ctx, { ...address, last: !associate });
    if (associate) {
      undo.add(() => undoSteps.releaseAddress(ctx, address));
      await steps.associateAddress(ctx, { ...address, instanceId: address.instanceId! });
    }
  } catch (err) {
    await undo.runInReverse();
    await recordAddressFailure(ctx, err);
  }
}
