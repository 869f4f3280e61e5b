import { recordAddressFailure, type AddressOperationInput } from './addressRunbook.js';
import { operationContext, steps } from './runbook.js';

/** Associate IP: a FLOATING address NATs to the instance's FIXED address. */
export async function associateIp(input: AddressOperationInput): Promise<void> {
  const ctx = operationContext(input);
  try {
    await steps.associateAddress(ctx, { ...input.address, instanceId: input.address.instanceId! });
  } catch (err) {
    await recordAddressFailure(ctx, err);
  }
}
