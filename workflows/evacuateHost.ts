import { forEachInstance } from './drainHost.js';
import type { OperationInput } from './runbook.js';

/**
 * Evacuate a DOWN host (Nova's host evacuate, CloudStack's HA): rebuild each of its instances on other
 * hosts as a child EVACUATE operation. Started by the host's health check when the deployment enables it.
 */
export async function evacuateHost(input: OperationInput): Promise<void> {
  await forEachInstance(input, { kind: 'EVACUATE', workflowType: 'evacuateInstance', record: 'recordEvacuated' });
}
