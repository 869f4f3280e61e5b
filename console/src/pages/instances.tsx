import { useState } from 'preact/hooks';
import type { InstanceState } from '../../../domain/instanceTransitions';
import { request } from '../api';
import { Badge, ErrorNote, Loading } from '../components';
import { dateTime } from '../format';
import { useLiveRows } from '../live';
import { href } from '../router';
import { can, useSession } from '../session';
import { BootDialog } from './bootDialog';
import { ActionMenu, useInstanceAction } from './instanceActionMenu';
import { INSTANCE_ROW, type InstanceRow } from './instanceRow';

const STATES: InstanceState[] = ['BUILDING', 'RUNNING', 'STOPPED', 'PAUSED', 'SUSPENDED', 'ERROR', 'DELETED'];

export function InstancesPage() {
  const session = useSession();
  const [filter, setFilter] = useState<InstanceState | ''>('');
  const [booting, setBooting] = useState(false);
  const { begin, dialog, error: actionError, notice } = useInstanceAction();
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
      {notice}
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
                    {filter ? `No instances in ${filter}.` : 'No instances yet.'}
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
