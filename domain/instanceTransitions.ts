import { z } from 'zod';

export const InstanceState = z.enum(['BUILDING', 'RUNNING', 'STOPPED', 'PAUSED', 'SUSPENDED', 'ERROR', 'DELETED']);
export type InstanceState = z.infer<typeof InstanceState>;

/** What an operation does (CONTRACT.md `OperationKind`); an instance's `task` is one of these. */
export const OperationKind = z.enum([
  'BOOT', 'START', 'STOP', 'REBOOT', 'PAUSE', 'UNPAUSE', 'SUSPEND', 'RESUME', 'RESIZE', 'MIGRATE', 'SNAPSHOT', 'DELETE',
  'CREATE_VOLUME', 'DELETE_VOLUME', 'ATTACH_VOLUME', 'DETACH_VOLUME', 'ALLOCATE_IP', 'RELEASE_IP',
  'SNAPSHOT_VOLUME',
  'ASSOCIATE_IP', 'DISASSOCIATE_IP', 'UPDATE_SECURITY_GROUPS',
  'DRAIN_HOST', 'EVACUATE_HOST', 'EVACUATE',
]);
export type OperationKind = z.infer<typeof OperationKind>;

/**
 * The actions one can take on an existing instance. A hard reboot is its own row because it is allowed
 * from more states than a soft one (Nova's rule); both run as operation kind REBOOT.
 */
export const InstanceAction = z.enum([
  'START', 'STOP', 'REBOOT', 'HARD_REBOOT', 'PAUSE', 'UNPAUSE', 'SUSPEND', 'RESUME', 'RESIZE', 'MIGRATE', 'SNAPSHOT', 'DELETE',
  'ATTACH_VOLUME', 'DETACH_VOLUME', 'EVACUATE',
]);
export type InstanceAction = z.infer<typeof InstanceAction>;

const S = InstanceState.enum;

/**
 * Which states each action may begin from, and the state it leaves on success ('same': unchanged).
 * Follows Nova's `check_instance_state` guards, narrowed to what the host agent's VM table
 * (hostagent/vmStates.ts) can actually carry out, so a begun action is always one the host can do:
 *
 * - STOP from RUNNING or PAUSED. Not from SUSPENDED: the guest's memory is saved and the agent cannot
 *   stop it; resume first (Nova also refuses stop on a suspended server).
 * - SUSPEND from RUNNING or PAUSED (the agent suspends a paused VM; Nova only from ACTIVE).
 * - REBOOT (soft) only from RUNNING: it asks the guest. HARD_REBOOT also from PAUSED, STOPPED and ERROR:
 *   it power-cycles the VM, Nova's way back from a broken instance. Not from SUSPENDED (resume first).
 * - RESIZE from RUNNING or STOPPED, MIGRATE from RUNNING (live) or STOPPED (cold: the disk moves, the VM is
 *   defined on the target), SNAPSHOT from RUNNING, STOPPED, PAUSED; all three leave the state as it was.
 * - DELETE from every state but DELETED, including BUILDING and ERROR, so nothing is ever stuck.
 * - EVACUATE (Nova's evacuate: rebuilt from its image on another host, its own host being DOWN) from RUNNING
 *   or STOPPED, leaving it as it was.
 * - BUILDING allows nothing but DELETE, and only once the boot's task has finished (one action at a time).
 * - ATTACH_VOLUME and DETACH_VOLUME hold the instance as well as the volume, so a delete never races an
 *   attach; from STOPPED or PAUSED they are cold (the VM picks the volume up at its next start).
 */
export const instanceTransitions = {
  START: { from: [S.STOPPED], to: S.RUNNING },
  STOP: { from: [S.RUNNING, S.PAUSED], to: S.STOPPED },
  REBOOT: { from: [S.RUNNING], to: S.RUNNING },
  HARD_REBOOT: { from: [S.RUNNING, S.PAUSED, S.STOPPED, S.ERROR], to: S.RUNNING },
  PAUSE: { from: [S.RUNNING], to: S.PAUSED },
  UNPAUSE: { from: [S.PAUSED], to: S.RUNNING },
  SUSPEND: { from: [S.RUNNING, S.PAUSED], to: S.SUSPENDED },
  RESUME: { from: [S.SUSPENDED], to: S.RUNNING },
  RESIZE: { from: [S.RUNNING, S.STOPPED], to: 'same' },
  MIGRATE: { from: [S.RUNNING, S.STOPPED], to: 'same' },
  SNAPSHOT: { from: [S.RUNNING, S.STOPPED, S.PAUSED], to: 'same' },
  DELETE: { from: [S.BUILDING, S.RUNNING, S.STOPPED, S.PAUSED, S.SUSPENDED, S.ERROR], to: S.DELETED },
  ATTACH_VOLUME: { from: [S.RUNNING, S.STOPPED, S.PAUSED], to: 'same' },
  DETACH_VOLUME: { from: [S.RUNNING, S.STOPPED, S.PAUSED], to: 'same' },
  EVACUATE: { from: [S.RUNNING, S.STOPPED], to: 'same' },
} as const satisfies Record<InstanceAction, { from: readonly InstanceState[]; to: InstanceState | 'same' }>;

/** The instance action an operation of `kind` performs, or undefined for kinds that are not instance actions. */
export function instanceActionOf(kind: OperationKind, options: { hard?: boolean } = {}): InstanceAction | undefined {
  if (kind === 'REBOOT') return options.hard ? 'HARD_REBOOT' : 'REBOOT';
  const action = InstanceAction.safeParse(kind);
  return action.success ? action.data : undefined;
}

/** The state `action` leaves an instance in when begun from `state`, or undefined when `state` does not allow it. */
export function stateAfter(state: InstanceState, action: InstanceAction): InstanceState | undefined {
  const t = instanceTransitions[action];
  if (!(t.from as readonly InstanceState[]).includes(state)) return undefined;
  return t.to === 'same' ? state : t.to;
}
