import { z } from 'zod';

/**
 * The states a VM has on a hypervisor, as every driver reports them. `crashed` is a VM whose process
 * died without being asked to (seen by the qemu driver on re-attach); it can only be started or destroyed.
 */
export const VmState = z.enum(['stopped', 'running', 'paused', 'suspended', 'crashed']);
export type VmState = z.infer<typeof VmState>;

export type VmAction = 'start' | 'stop' | 'reboot' | 'pause' | 'unpause' | 'suspend' | 'resume' | 'snapshot' | 'migrate' | 'attachVolume' | 'detachVolume' | 'resize';

/** Which state each action needs, and where it leaves the VM. The same table holds for `sim` and `qemu`. */
export const vmTransitions: Record<VmAction, { from: readonly VmState[]; to: VmState | 'same' }> = {
  start: { from: ['stopped', 'crashed'], to: 'running' },
  stop: { from: ['running', 'paused'], to: 'stopped' },
  reboot: { from: ['running'], to: 'running' },
  pause: { from: ['running'], to: 'paused' },
  unpause: { from: ['paused'], to: 'running' },
  suspend: { from: ['running', 'paused'], to: 'suspended' },
  resume: { from: ['suspended'], to: 'running' },
  snapshot: { from: ['stopped', 'running', 'paused'], to: 'same' },
  migrate: { from: ['running'], to: 'same' },
  attachVolume: { from: ['running', 'stopped', 'paused'], to: 'same' },
  detachVolume: { from: ['running', 'stopped', 'paused'], to: 'same' },
  /** A new size for vCPUs, memory and disk takes effect at the next start, so only a stopped VM takes it. */
  resize: { from: ['stopped'], to: 'same' },
};

/** The state after `action`, or undefined when `state` does not allow it. */
export function nextVmState(state: VmState, action: VmAction): VmState | undefined {
  const t = vmTransitions[action];
  if (!t.from.includes(state)) return undefined;
  return t.to === 'same' ? state : t.to;
}
