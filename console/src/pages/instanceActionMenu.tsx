import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { Confirm, MenuButton } from '../components';
import { actionMutation, availableActions, type ActionSpec } from '../instanceActions';
import { href } from '../router';
import { useSession } from '../session';
import type { InstanceRow } from './instanceRow';
import { ResizeDialog, SnapshotDialog, type SnapshotImage } from './instanceForms';

type Target = Pick<InstanceRow, 'id' | 'name' | 'flavor'>;

/**
 * Runs a row action: at once, after a confirmation when it is destructive, or through its dialog when
 * it asks for input (resize, snapshot). Shared by the table and the instance page.
 */
export function useInstanceAction() {
  const session = useSession();
  const [pending, setPending] = useState<{ spec: ActionSpec; instance: Target } | null>(null);
  const [resizing, setResizing] = useState<Target | null>(null);
  const [snapshotting, setSnapshotting] = useState<Target | null>(null);
  const [taken, setTaken] = useState<{ image: SnapshotImage; of: string } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async (spec: ActionSpec, instance: Target) => {
    setPending(null);
    try {
      await request(session.token, actionMutation(spec), { id: instance.id });
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
    }
  };
  const begin = (spec: ActionSpec, instance: Target) => {
    setError(null);
    if (spec.form === 'resize') setResizing(instance);
    else if (spec.form === 'snapshot') setSnapshotting(instance);
    else if (spec.destructive) setPending({ spec, instance });
    else void run(spec, instance);
  };
  const dialog = (
    <>
      <Confirm
        action={pending ? pending.spec.label : null}
        subject={pending?.instance.name ?? ''}
        detail={pending?.spec.warning ?? ''}
        onCancel={() => setPending(null)}
        onConfirm={() => pending && void run(pending.spec, pending.instance)}
      />
      <ResizeDialog instance={resizing} onClose={() => setResizing(null)} />
      <SnapshotDialog instance={snapshotting} onClose={() => setSnapshotting(null)} onTaken={(image) => setTaken({ image, of: snapshotting?.name ?? '' })} />
    </>
  );
  const notice = taken && (
    <p class="notice" role="status">
      Snapshot of {taken.of} under way: image <strong>{taken.image.name}</strong> is {taken.image.status} until it is taken. It is listed under{' '}
      <a href={href('images')}>Images</a>.{' '}
      <button type="button" class="link" onClick={() => setTaken(null)}>
        Dismiss
      </button>
    </p>
  );
  return { begin, dialog, error, notice };
}

/** The row menu: every action the instance's state and the caller's role allow now, destructive ones in red. */
export function ActionMenu({ instance, onAction }: { instance: InstanceRow; onAction: (spec: ActionSpec) => void }) {
  const session = useSession();
  const actions = availableActions(instance.state, instance.task, session);
  if (actions.length === 0) return <span class="muted">{instance.task ? `${instance.task.toLowerCase()}…` : ''}</span>;
  return (
    <MenuButton
      label={`Actions for ${instance.name}`}
      text="Actions"
      items={actions.map((a) => ({ key: a.action, label: a.label, danger: a.destructive, run: () => onAction(a) }))}
    />
  );
}
