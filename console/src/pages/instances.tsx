import { useState } from 'preact/hooks';
import type { InstanceState } from '../../../domain/instanceTransitions';
import { ApiError, request } from '../api';
import { Badge, Confirm, ErrorNote, Loading, MenuButton } from '../components';
import { dateTime } from '../format';
import { actionMutation, availableActions, type ActionSpec } from '../instanceActions';
import { useLiveRows } from '../live';
import { href } from '../router';
import { can, useSession } from '../session';
import { BootDialog } from './bootDialog';
import { INSTANCE_ROW, type InstanceRow } from './instanceRow';

const STATES: InstanceState[] = ['BUILDING', 'RUNNING', 'STOPPED', 'PAUSED', 'SUSPENDED', 'ERROR', 'DELETED'];

/** Runs a row action, asking first when it is destructive. Shared by the table and the instance page. */
export function useInstanceAction() {
  const session = useSession();
  const [pending, setPending] = useState<{ spec: ActionSpec; instance: { id: string; name: string } } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async (spec: ActionSpec, instance: { id: string; name: string }) => {
    setPending(null);
    try {
      await request(session.token, actionMutation(spec), { id: instance.id });
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
    }
  };
  const begin = (spec: ActionSpec, instance: { id: string; name: string }) => (spec.destructive ? setPending({ spec, instance }) : void run(spec, instance));
  const dialog = (
    <Confirm
      action={pending ? pending.spec.label : null}
      subject={pending?.instance.name ?? ''}
      detail={pending?.spec.warning ?? ''}
      onCancel={() => setPending(null)}
      onConfirm={() => pending && void run(pending.spec, pending.instance)}
    />
  );
  return { begin, dialog, error };
}

/** The row menu: every action the instance's state allows now, destructive ones in red. */
export function ActionMenu({ instance, onAction }: { instance: InstanceRow; onAction: (spec: ActionSpec) => void }) {
  const session = useSession();
  const actions = session.role === 'READER' ? [] : availableActions(instance.state, instance.task, session.mutations);
  if (actions.length === 0) return <span class="muted">{instance.task ? `${instance.task.toLowerCase()}…` : ''}</span>;
  return (
    <MenuButton
      label={`Actions for ${instance.name}`}
      text="Actions"
      items={actions.map((a) => ({ key: a.action, label: a.label, danger: a.destructive, run: () => onAction(a) }))}
    />
  );
}

export function InstancesPage() {
  const session = useSession();
  const [filter, setFilter] = useState<InstanceState | ''>('');
  const [booting, setBooting] = useState(false);
  const { begin, dialog, error: actionError } = useInstanceAction();
  const { rows, error, merge } = useLiveRows<InstanceRow>(
    async () =>
      (await request<{ instances: { edges: { node: InstanceRow }[] } }>(session.token, `query Instances { instances(first: 500) { edges { node { ${INSTANCE_ROW} } } } }`)).instances.edges.map(
        (e) => e.node,
      ),
    { query: `subscription InstancesLive { instanceChanged { ${INSTANCE_ROW} } }`, pick: (d: { instanceChanged: InstanceRow }) => d.instanceChanged },
  );
  const shown = (rows ?? [])
    .filter((r) => (filter ? r.state === filter : r.state !== 'DELETED'))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.name.localeCompare(b.name));

  return (
    <section aria-labelledby="instances-title">
      <header class="page-head">
        <h1 id="instances-title">Instances</h1>
        <div class="toolbar">
          <label for="state-filter">State</label>
          <select id="state-filter" value={filter} onChange={(e) => setFilter((e.currentTarget as HTMLSelectElement).value as InstanceState | '')}>
            <option value="">All but deleted</option>
            {STATES.map((s) => (
              <option value={s} key={s}>
                {s}
              </option>
            ))}
          </select>
          {can(session, 'bootInstance') && (
            <button type="button" class="primary" onClick={() => setBooting(true)}>
              Boot instance
            </button>
          )}
        </div>
      </header>
      <ErrorNote error={error ?? actionError} />
      {!rows ? (
        <Loading />
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="instances-title">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">Task</th>
                <th scope="col">Flavor</th>
                <th scope="col">Host</th>
                <th scope="col">Addresses</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.length === 0 && (
                <tr>
                  <td colSpan={8} class="muted">
                    No instances{filter ? ` in ${filter}` : ''} yet.
                  </td>
                </tr>
              )}
              {shown.map((r) => (
                <tr key={r.id} data-instance-id={r.id} data-instance-name={r.name}>
                  <th scope="row">
                    <a href={href('instances', r.id)}>{r.name}</a>
                  </th>
                  <td>
                    <Badge value={r.state} />
                  </td>
                  <td>{r.task ? <Badge value={r.task} /> : <span class="muted">—</span>}</td>
                  <td>{r.flavor.name}</td>
                  <td>{r.host?.name ?? <span class="muted">—</span>}</td>
                  <td class="mono">{r.addresses.map((a) => a.address).join(', ') || <span class="muted">—</span>}</td>
                  <td>{dateTime(r.createdAt)}</td>
                  <td>
                    <ActionMenu instance={r} onAction={(spec) => begin(spec, r)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {dialog}
      <BootDialog open={booting} onClose={() => setBooting(false)} onBooted={(instance) => (merge([instance]), setBooting(false))} />
    </section>
  );
}
