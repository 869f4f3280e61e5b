import { ApplicationFailure } from '@temporalio/workflow';
import type { AddressRequest, OperationContext } from '../activities/index.js';
import { failureOf, undoSteps, type OperationInput } from './runbook.js';

/** What an address command passes to its workflow; `instanceId` of the input is the address id (its resource). */
export interface AddressOperationInput extends OperationInput {
  address: AddressRequest;
}

/** Records a failure of an operation that holds no instance task (addresses, security groups) and fails the workflow, as recordFailure does for instances. */
export async function recordAddressFailure(ctx: OperationContext, err: unknown): Promise<never> {
  const failure = failureOf(err);
  await undoSteps.recordAddressFailed(ctx, failure);
  throw ApplicationFailure.create({ message: failure.message, type: failure.code, nonRetryable: true });
}
