import { instanceTransitions, type InstanceAction, type InstanceState } from '../../domain/instanceTransitions';

/**
 * The lifecycle actions a row menu offers, read off the domain's own transition table so the console
 * never offers what the API would refuse. Each names its mutation; an action whose mutation the API does
 * not have yet (resize, migrate, snapshot come with other issues) is simply not shown.
 */
export interface ActionSpec {
  action: InstanceAction;
  label: string;
  mutation: string;
  /** The GraphQL input beyond the id. */
  extra: string;
  destructive: boolean;
  /** What the confirmation says happens, for a destructive action. */
  warning?: string;
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
  { action: 'MIGRATE', label: 'Migrate', mutation: 'migrateInstance', extra: '', destructive: false },
  { action: 'DELETE', label: 'Delete', mutation: 'deleteInstance', extra: '', destructive: true, warning: 'The instance and its disk are destroyed. This cannot be undone.' },
];

/** What may begin now: the state allows it and nothing else runs on the instance. */
export function availableActions(state: InstanceState, task: string | null, mutations: Set<string>): ActionSpec[] {
  if (task) return [];
  return actionSpecs.filter((a) => mutations.has(a.mutation) && (instanceTransitions[a.action].from as readonly string[]).includes(state));
}

export const actionMutation = (a: ActionSpec): string =>
  `mutation Act($id: ID!) { ${a.mutation}(input: {id: $id${a.extra}}) { operation { id kind status } } }`;
