import { recordAddressFailure, type AddressOperationInput } from './addressRunbook.js';
import { operationContext, steps } from './runbook.js';

/** Release IP: a floating address is disassociated first (Neutron's floating IP delete does the same), then returned to its pool. */
export async function releaseIp(input: AddressOperationInput): Promise<void> {
  const ctx = operationContext(input);
  try {
    await steps.disassociateAddress(ctx, { ...input.address, last: false });
    await steps.releaseAddress(ctx, input.address);
  } catch (err) {
    await recordAddressFailure(ctx, err);
  }
}
