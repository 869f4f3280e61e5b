import { recordAddressFailure, type AddressOperationInput } from './addressRunbook.js';
import { operationContext, steps } from './runbook.js';

/** Disassociate IP: the FLOATING address stops NATing to its instance and stays the project's. */
export async function disassociateIp(input: AddressOperationInput): Promise<void> {
  const ctx = operationContext(input);
  try {
    await steps.disassociateAddress(ctx, { ...input.address, last: true });
  } catch (err) {
    await recordAddressFailure(ctx, err);
  }
}
