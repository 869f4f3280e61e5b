import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { LineChart, type Point } from '../charts';
import { Badge, ErrorNote, Loading } from '../components';
import { bytes, dateTime, memory, time } from '../format';
import { useQuery, useSubscription } from '../live';
import { href } from '../router';
import { useSession } from '../session';
import { INSTANCE_ROW, type InstanceRow } from './instanceRow';
import { ActionMenu, useInstanceAction } from './instanceActionMenu';
import { OPERATION_FIELDS, OperationTimeline, type OperationView } from './operationTimeline';

interface InstanceDetail extends InstanceRow {
  launchedAt: string | null;
  errorReason: string | null;
  image: { name: string };
  flavor: { name: string; vcpus: number; memoryMb: number; diskGb: number };
  host: { name: string } | null;
  operations: OperationView[];
  events: { id: string; type: string; version: number; recordedAt: string; metadata: { actor?: string } }[];
}

/** Who did it: a token id shortened the way git shortens a hash (the whole is in the title); a named actor (bootstrap) as it is. */
const actorName = (actor: string | undefined): string => (!actor ? '—' : /^[0-9a-f]{8}-[0-9a-f-]{27}$/i.test(actor) ? actor.slice(0, 8) : actor);

const DETAIL = `${INSTANCE_ROW} launchedAt errorReason image { name } flavor { name vcpus memoryMb diskGb }
  operations { ${OPERATION_FIELDS} } events { id type version recordedAt metadata }`;

/**
 * How soon the serial console is read again once the last read answered. The API has no subscription
 * for console output (it lives on the host agent, read on demand), so this is the console's one poll:
 * only while an instance page is open and its tab visible, and one read at a time.
 */
const FOLLOW_MS = 2000;

/** Reads again `ms` after each answer while the document is visible; a hidden tab waits until it is shown. */
function useFollow(reload: () => void, answer: unknown, ms: number): void {
  useEffect(() => {
    if (answer === undefined) return;
    const tick = () => (document.visibilityState === 'visible' ? reload() : document.addEventListener('visibilitychange', tick, { once: true }));
    const timer = setTimeout(tick, ms);
    return () => {
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', tick);
    };
  }, [answer]);
}

/** The serial console's tail, following (tail -f) while the page is open, and read again after every change of the instance. */
function ConsoleLog({ id, version }: { id: string; version: number }) {
  const [lines] = useState(200);
  const log = useQuery<{ instance: { consoleLog: string | null } | null }>(`query ConsoleLog($id: ID!, $lines: Int) { instance(id: $id) { consoleLog(lines: $lines) } }`, { id, lines }, [
    id,
    version,
  ]);
  useFollow(log.reload, log.data ?? log.error, FOLLOW_MS);
  const text = log.data?.instance?.consoleLog;
  // Kept at the newest line unless someone scrolled up to read.
  const pre = useRef<HTMLPreElement>(null);
  const pinned = useRef(true);
  useLayoutEffect(() => {
    if (pre.current && pinned.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  const onScroll = () => {
    const el = pre.current;
    if (el) pinned.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
  };
  return (
    <section aria-labelledby="console-title">
      <header class="section-head">
        <h2 id="console-title">Serial console</h2>
        <div class="toolbar">
          <span class="muted">Follows the output while this page is open</span>
          <button type="button" onClick={log.reload}>
            Refresh
          </button>
        </div>
      </header>
      {log.error ? (
        <p class="muted">Not available: {log.error.message}</p>
      ) : text == null ? (
        <p class="muted">{log.data ? 'Not available while the instance has no host.' : 'Loading…'}</p>
      ) : (
        <pre class="console" tabIndex={0} aria-label="Serial console output" ref={pre} onScroll={onScroll}>
          {text || '(empty)'}
        </pre>
      )}
    </section>
  );
}

/** The meters an instance page draws (Ceilometer's names), the counters as rates per second. */
const METERS: { key: string; meter: string; title: string; rate?: boolean; format: (n: number) => string }[] = [
  { key: 'cpu', meter: 'cpu_util', title: 'CPU utilisation', format: (n) => `${n.toFixed(n < 10 ? 1 : 0)} %` },
  { key: 'mem', meter: 'memory.usage', title: 'Memory in use', format: (n) => (n >= 1024 ? `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} GB` : `${Math.round(n)} MB`) },
  { key: 'diskRead', meter: 'disk.read.bytes', title: 'Disk reads', rate: true, format: (n) => `${bytes(n)}/s` },
  { key: 'diskWrite', meter: 'disk.write.bytes', title: 'Disk writes', rate: true, format: (n) => `${bytes(n)}/s` },
  { key: 'netIn', meter: 'network.incoming.bytes', title: 'Network in', rate: true, format: (n) => `${bytes(n)}/s` },
  { key: 'netOut', meter: 'network.outgoing.bytes', title: 'Network out', rate: true, format: (n) => `${bytes(n)}/s` },
];
const RANGES = [
  { value: '3600000', label: 'Last hour' },
  { value: '21600000', label: 'Last 6 hours' },
  { value: '86400000', label: 'Last day' },
  { value: '604800000', label: 'Last week' },
];
const METERS_QUERY = `query InstanceMeters($id: ID!, $from: DateTime!, $to: DateTime!) { ${METERS.map(
  (m) => `${m.key}: meters(resourceId: $id, meter: "${m.meter}", from: $from, to: $to) { timestamp value }`,
).join(' ')} }`;

type Samples = { timestamp: string; value: number }[];

/** A counter's samples as the rate between each two (a reset, the guest rebooting, starts again from it). */
function rates(samples: Samples): Point[] {
  const out: Point[] = [];
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1]!, samples[i]!];
    const seconds = (Date.parse(b.timestamp) - Date.parse(a.timestamp)) / 1000;
    if (seconds > 0 && b.value >= a.value) out.push({ at: Date.parse(b.timestamp), iso: b.timestamp, value: (b.value - a.value) / seconds });
  }
  return out;
}

/** The instance's meters over a chosen range; read again on demand and after each change of the instance. */
function Meters({ id, version }: { id: string; version: number }) {
  const [span, setSpan] = useState(Number(RANGES[0]!.value));
  // The window is fixed when it is read, so a chart's axis and its samples agree.
  const [window, setWindow] = useState(() => ({ from: Date.now() - span, to: Date.now() }));
  const data = useQuery<Record<string, Samples>>(METERS_QUERY, { id, from: new Date(window.from).toISOString(), to: new Date(window.to).toISOString() }, [id, window.from, window.to]);
  const again = (ms = span) => setWindow({ from: Date.now() - ms, to: Date.now() });
  const first = useRef(true);
  useEffect(() => {
    if (first.current) first.current = false;
    else again();
  }, [version]);
  return (
    <section aria-labelledby="meters-title">
      <header class="section-head">
        <h2 id="meters-title">Meters</h2>
        <div class="toolbar">
          <label for="meters-range">Range</label>
          <select
            id="meters-range"
            value={String(span)}
            onChange={(e) => {
              const ms = Number((e.currentTarget as HTMLSelectElement).value);
              setSpan(ms);
              again(ms);
            }}
          >
            {RANGES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
          <button type="button" onClick={() => again()}>
            Refresh
          </button>
        </div>
      </header>
      {data.error ? (
        <ErrorNote error={data.error} />
      ) : !data.data ? (
        <Loading />
      ) : (
        <div class="chart-grid-cards">
          {METERS.map((m) => {
            const samples = data.data![m.key] ?? [];
            const points = m.rate ? rates(samples) : samples.map((x) => ({ at: Date.parse(x.timestamp), iso: x.timestamp, value: x.value }));
            return <LineChart key={m.key} id={`meter-${m.key}`} title={m.title} points={points} from={window.from} to={window.to} format={m.format} />;
          })}
        </div>
      )}
    </section>
  );
}

export function InstancePage({ id }: { id: string }) {
  const detail = useQuery<{ instance: InstanceDetail | null }>(`query Instance($id: ID!) { instance(id: $id) { ${DETAIL} } }`, { id }, [id]);
  // Each change of the instance (a new task, a new state) brings a fresh read of its history too.
  useSubscription<{ instanceChanged: { id: string; version: number } }>(`subscription InstanceLive($id: ID) { instanceChanged(id: $id) { id version } }`, { id }, () => detail.reload(), [id]);
  // The audit log is a projection of its own and may fold an event after the instance's: it says so itself.
  useSubscription(`subscription InstanceAudit($prefix: String) { events(streamPrefix: $prefix) { id } }`, { prefix: `instance-${id}` }, () => detail.reload(), [id]);
  const { begin, dialog, error, notice } = useInstanceAction();
  const session = useSession();
  const i = detail.data?.instance;

  if (detail.error) return <ErrorNote error={detail.error} />;
  if (!detail.data) return <Loading />;
  if (!i)
    return (
      <section>
        <h1>Instance not found</h1>
        <p>
          It does not exist or belongs to another project. <a href={href('instances')}>Back to instances</a>
        </p>
      </section>
    );

  return (
    <section aria-labelledby="instance-title">
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href('instances')}>Instances</a> / <span>{i.name}</span>
      </nav>
      <header class="page-head">
        <h1 id="instance-title">
          {i.name} <Badge value={i.state} /> {i.task && <Badge value={i.task} />}
        </h1>
        <div class="toolbar">
          <ActionMenu instance={i} onAction={(spec) => begin(spec, i)} />
        </div>
      </header>
      <ErrorNote error={error} />
      {notice}
      <dl class="details">
        <dt>ID</dt>
        <dd class="mono">{i.id}</dd>
        <dt>Flavor</dt>
        <dd>
          {i.flavor.name} ({i.flavor.vcpus} vCPU, {memory(i.flavor.memoryMb)}, {i.flavor.diskGb} GB)
        </dd>
        <dt>Image</dt>
        <dd>{i.image.name}</dd>
        <dt>Host</dt>
        <dd>{i.host?.name ?? '—'}</dd>
        <dt>Addresses</dt>
        <dd class="mono">{i.addresses.map((a) => a.address).join(', ') || '—'}</dd>
        <dt>Created</dt>
        <dd>{dateTime(i.createdAt)}</dd>
        <dt>Launched</dt>
        <dd>{dateTime(i.launchedAt)}</dd>
        {i.errorReason && (
          <>
            <dt>Error</dt>
            <dd class="error-inline">{i.errorReason}</dd>
          </>
        )}
      </dl>
      <div class="columns">
        <section aria-labelledby="ops-title">
          <h2 id="ops-title">Operations</h2>
          {i.operations.map((op) => (
            <OperationTimeline operation={op} key={op.id} />
          ))}
        </section>
        <section aria-labelledby="audit-title">
          <h2 id="audit-title">Audit events</h2>
          <div class="table-wrap">
            <table aria-labelledby="audit-title" class="compact">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Event</th>
                  <th scope="col">By</th>
                  <th scope="col">Recorded</th>
                </tr>
              </thead>
              <tbody>
                {[...i.events].reverse().map((e) => (
                  <tr key={e.id}>
                    <td>{e.version}</td>
                    <td>{e.type}</td>
                    <td class="mono" title={e.metadata?.actor}>
                      {actorName(e.metadata?.actor)}
                    </td>
                    <td title={dateTime(e.recordedAt)}>{time(e.recordedAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      </div>
      {session.queries.has('meters') && <Meters id={i.id} version={i.version} />}
      <ConsoleLog id={i.id} version={i.version} />
      {dialog}
    </section>
  );
}
