import { instanceTransitions, type InstanceAction, type InstanceState } from '../../domain/instanceTransitions';
import { can, type Session } from './session';

/**
 * The lifecycle actions a row menu offers, read off the domain's own transition table (which states
 * each may begin from) and the caller's role (what the API's command requires), so the console never
 * offers what the API would refuse. Each names its mutation; one the API does not have is not shown.
 */
export interface ActionSpec {
  action: InstanceAction;
  label: string;
  mutation: string;
  /** The GraphQL input beyond the id, for an action that asks nothing. */
  extra: string;
  destructive: boolean;
  /** What the confirmation says happens, for a destructive action. */
  warning?: string;
  /** An action the API keeps for admins (its command calls requireAdmin). */
  adminOnly?: boolean;
  /** An action that asks for its input in a dialog first: a flavor (resize) or an image name (snapshot). */
  form?: 'resize' | 'snapshot';
}

export const actionSpecs: ActionSpec[] = [
  { action: 'START', label: 'Start', mutation: 'startInstance', extra: '', destructive: false },
  { action: 'STOP', label: 'Stop', mutation: 'stopInstance', extra: '', destructive: true, warning: 'The guest is shut down. Start it again whenever you like; its disk is kept.' },
  { action: 'REBOOT', label: 'Reboot', mutation: 'rebootInstance', extra: ', hard: false', destructive: false },
  { action: 'HARD_REBOOT', label: 'Hard reboot', mutation: 'rebootInstance', extra: ', hard: true', destructive: true, warning: 'The VM is power-cycled without asking the guest: unsaved data in the guest is lost.' },
  { action: 'PAUSE', label: 'Pause', mutation: 'pauseInstance', extra: '', destructive: false },
  { action: 'UNPAUSE', label: 'Unpause', mutation: 'unpauseInstance', extra: '', destructive: false },
  { action: 'SUSPEND', label: 'Suspend', mutation: 'suspendInstance', extra: '', destructive: false },
  { action: 'RESUME', label: 'Resume', mutation: 'resumeInstance', extra: '', destructive: false },
  { action: 'RESIZE', label: 'Resize…', mutation: 'resizeInstance', extra: '', destructive: false, form: 'resize' },
  // Admin only, as in Nova (schema/commands/migrateInstance.ts): a migration names hosts, which members never see.
  { action: 'MIGRATE', label: 'Migrate', mutation: 'migrateInstance', extra: '', destructive: false, adminOnly: true },
  { action: 'SNAPSHOT', label: 'Snapshot…', mutation: 'snapshotInstance', extra: '', destructive: false, form: 'snapshot' },
  { action: 'DELETE', label: 'Delete', mutation: 'deleteInstance', extra: '', destructive: true, warning: 'The instance and its disk are destroyed. This cannot be undone.' },
];

/** What may begin now: the role may run it, the state allows it and nothing else runs on the instance. */
export function availableActions(state: InstanceState, task: string | null, session: Pick<Session, 'role' | 'mutations'>): ActionSpec[] {
  if (task) return [];
  return actionSpecs.filter(
    (a) => can(session, a.mutation, a.adminOnly ? 'admin' : 'writer') && (instanceTransitions[a.action].from as readonly string[]).includes(state),
  );
}

export const actionMutation = (a: ActionSpec): string =>
  `mutation Act($id: ID!) { ${a.mutation}(input: {id: $id${a.extra}}) { operation { id kind status } } }`;
