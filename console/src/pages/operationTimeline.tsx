import { useEffect, useState } from 'preact/hooks';
import { request } from '../api';
import { Badge } from '../components';
import { dateTime, duration } from '../format';
import { useSubscription } from '../live';
import { useSession } from '../session';

export interface Step {
  name: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
}

export interface OperationView {
  id: string;
  kind: string;
  status: string;
  resourceId: string;
  projectId: string;
  createdAt: string;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  steps: Step[];
}

export const OPERATION_FIELDS = 'id kind status resourceId projectId createdAt finishedAt error { code message } steps { name status startedAt finishedAt error { code message } }';

const finished = (status: string) => status === 'SUCCEEDED' || status === 'FAILED' || status === 'CANCELED';

/** How far an operation has got; copies arrive from a query and a subscription in any order, the further one wins. */
const progress = (op: OperationView) => (finished(op.status) ? 1000 : 0) + op.steps.length * 2 + op.steps.filter((s) => s.finishedAt).length;
const further = (a: OperationView, b: OperationView) => (a.id !== b.id || progress(b) >= progress(a) ? b : a);

/**
 * One operation and its steps as a timeline. While it runs it follows operationChanged; it subscribes
 * first and reads once after, so a step recorded in between is not missed.
 */
export function OperationTimeline({ operation }: { operation: OperationView }) {
  const { token } = useSession();
  const [op, setOp] = useState(operation);
  useEffect(() => setOp((cur) => further(cur, operation)), [operation]);
  const live = !finished(operation.status);
  useSubscription<{ operationChanged: OperationView }>(
    `subscription OperationLive($id: ID!) { operationChanged(id: $id) { ${OPERATION_FIELDS} } }`,
    { id: operation.id },
    (d) => setOp((cur) => further(cur, d.operationChanged)),
    [operation.id, live],
  );
  useEffect(() => {
    if (!live) return;
    void request<{ operation: OperationView | null }>(token, `query Op($id: ID!) { operation(id: $id) { ${OPERATION_FIELDS} } }`, { id: operation.id }).then(
      (r) => r.operation && setOp((cur) => further(cur, r.operation!)),
    );
  }, [operation.id, live]);

  return (
    <article class="operation" aria-label={`${op.kind} operation ${op.status}`}>
      <header>
        <strong>{op.kind}</strong> <Badge value={op.status} /> <span class="muted">{dateTime(op.createdAt)}</span>
        {op.error && (
          <span class="error-inline">
            {' '}
            {op.error.code}: {op.error.message}
          </span>
        )}
      </header>
      <ol class="timeline" aria-live="polite">
        {op.steps.map((s, i) => (
          <li key={`${s.name}-${i}`} class={`step step-${s.status.toLowerCase()}`}>
            <span class="step-name">{s.name}</span> <Badge value={s.status} /> <span class="muted">{duration(s.startedAt, s.finishedAt)}</span>
            {s.error && (
              <div class="error-inline">
                {s.error.code}: {s.error.message}
              </div>
            )}
          </li>
        ))}
        {op.steps.length === 0 && <li class="muted">waiting for the first step…</li>}
      </ol>
    </article>
  );
}
