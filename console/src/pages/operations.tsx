import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { Badge, ErrorNote, Loading } from '../components';
import { dateTime } from '../format';
import { useLiveRows } from '../live';
import { href } from '../router';
import { can, useSession } from '../session';
import { OPERATION_FIELDS, type OperationView } from './operationTimeline';

const STATUSES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELED'];
const INSTANCE_KINDS = new Set(['BOOT', 'START', 'STOP', 'REBOOT', 'PAUSE', 'UNPAUSE', 'SUSPEND', 'RESUME', 'RESIZE', 'MIGRATE', 'SNAPSHOT', 'DELETE']);

/** Operations, live through operationsChanged: each copy arrives after its projection committed it. */
export function OperationsPage() {
  const session = useSession();
  const [status, setStatus] = useState('');
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const { rows, error } = useLiveRows<OperationView>(
    async () =>
      (await request<{ operations: { edges: { node: OperationView }[] } }>(session.token, `query Ops { operations(first: 200) { edges { node { ${OPERATION_FIELDS} } } } }`)).operations.edges.map(
        (e) => e.node,
      ),
    { query: `subscription OpsLive { operationsChanged { ${OPERATION_FIELDS} } }`, pick: (d: { operationsChanged: OperationView }) => d.operationsChanged },
  );
  const act = async (mutation: 'retryOperation' | 'resetOperation', id: string) => {
    try {
      await request(session.token, `mutation Act($id: ID!) { ${mutation}(input: {id: $id}) { operation { id status } } }`, { id });
      setActionError(null);
    } catch (e) {
      setActionError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
    }
  };
  const shown = (rows ?? []).filter((o) => !status || o.status === status).sort((a, b) => b.createdAt.localeCompare(a.createdAt));

  return (
    <section aria-labelledby="ops-page-title">
      <header class="page-head">
        <h1 id="ops-page-title">Operations</h1>
        <div class="toolbar">
          <label for="status-filter">Status</label>
          <select id="status-filter" value={status} onChange={(e) => setStatus((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">All</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
      </header>
      <ErrorNote error={error ?? actionError} />
      {!rows ? (
        <Loading />
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="ops-page-title">
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Resource</th>
                <th scope="col">Failing step</th>
                <th scope="col">Created</th>
                <th scope="col">Finished</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.length === 0 && (
                <tr>
                  <td colSpan={7} class="muted">
                    No operations.
                  </td>
                </tr>
              )}
              {shown.map((o) => {
                const failing = o.steps.find((s) => s.status === 'FAILED');
                return (
                  <tr key={o.id} data-operation-id={o.id}>
                    <th scope="row">{o.kind}</th>
                    <td>
                      <Badge value={o.status} />
                    </td>
                    <td class="mono">{INSTANCE_KINDS.has(o.kind) ? <a href={href('instances', o.resourceId)}>{o.resourceId.slice(0, 8)}</a> : o.resourceId.slice(0, 8)}</td>
                    <td>
                      {failing ? (
                        <>
                          {failing.name}
                          <div class="error-inline">{failing.error?.message ?? o.error?.message}</div>
                        </>
                      ) : (
                        <span class="muted">—</span>
                      )}
                    </td>
                    <td>{dateTime(o.createdAt)}</td>
                    <td>{dateTime(o.finishedAt)}</td>
                    <td>
                      {o.status === 'FAILED' && can(session, 'retryOperation', 'admin') && (
                        <button type="button" onClick={() => void act('retryOperation', o.id)}>
                          Retry
                        </button>
                      )}
                      {o.status === 'FAILED' && can(session, 'resetOperation', 'admin') && (
                        <button type="button" onClick={() => void act('resetOperation', o.id)}>
                          Reset
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
