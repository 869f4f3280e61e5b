import { useState } from 'preact/hooks';
import { BarChart } from '../charts';
import { ErrorNote, Field, Loading, unplacedError } from '../components';
import { useQuery, useSubscription } from '../live';
import { useSession } from '../session';

interface UsageRecordView {
  resourceId: string;
  resourceType: string;
  usageType: string;
  quantity: number;
  unit: string;
  start: string;
  end: string;
  cost: number | null;
}
interface UsageReportView {
  projectId: string;
  from: string;
  to: string;
  cost: number;
  currency: string;
  totals: { usageType: string; quantity: number; unit: string; cost: number }[];
  records: UsageRecordView[];
}

const DAY = 86_400_000;
const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);
const dayLabel = (day: string) => new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });

export const money = (currency: string) => {
  try {
    const f = new Intl.NumberFormat(undefined, { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 4 });
    return (n: number) => f.format(n);
  } catch {
    return (n: number) => `${n.toFixed(2)} ${currency}`;
  }
};
const amount = (n: number) => String(Number(n.toFixed(n < 10 ? 2 : 1)));

/** Sums `pick` of the records per UTC day of their start, one bucket for every day of [from, to). */
function perDay(records: UsageRecordView[], from: string, to: string, pick: (r: UsageRecordView) => number) {
  const sums = new Map<string, number>();
  for (const r of records) sums.set(r.start.slice(0, 10), (sums.get(r.start.slice(0, 10)) ?? 0) + pick(r));
  const days: { key: string; label: string; value: number }[] = [];
  for (let t = Date.parse(from); t < Date.parse(to); t += DAY) days.push({ key: isoDay(t), label: dayLabel(isoDay(t)), value: sums.get(isoDay(t)) ?? 0 });
  return days;
}

/** Admin: whose usage. A pick shows that project's report at once. */
function ProjectPicker({ value, onPick }: { value: string; onPick: (p: { id: string; name: string }) => void }) {
  const projects = useQuery<{ projects: { id: string; name: string }[] }>('query Projects { projects { id name } }');
  const list = projects.data?.projects ?? [];
  return (
    <>
      <label for="usage-project">Project</label>
      <select
        id="usage-project"
        value={value}
        onChange={(e) => {
          const p = list.find((x) => x.id === (e.currentTarget as HTMLSelectElement).value);
          if (p) onPick(p);
        }}
      >
        {!list.some((p) => p.id === value) && <option value={value}>(this token's project)</option>}
        {list.map((p) => (
          <option key={p.id} value={p.id}>
            {p.name}
          </option>
        ))}
      </select>
    </>
  );
}

/** Usage and its cost (CloudStack's usage records): a chart per usage type over a range of days. */
export function UsagePage() {
  const session = useSession();
  const admin = session.role === 'ADMIN';
  const today = isoDay(Date.now());
  const [range, setRange] = useState({ projectId: session.projectId, fromDay: isoDay(Date.now() - 29 * DAY), toDay: today });
  const window = { p: admin ? range.projectId : null, from: `${range.fromDay}T00:00:00.000Z`, to: new Date(Date.parse(`${range.toDay}T00:00:00.000Z`) + DAY).toISOString() };
  const report = useQuery<{ usage: UsageReportView | null }>(
    `query Usage($p: ID, $from: DateTime!, $to: DateTime!) { usage(projectId: $p, from: $from, to: $to) {
       projectId from to cost currency totals { usageType quantity unit cost } records { resourceId resourceType usageType quantity unit start end cost } } }`,
    window,
    [range.projectId, range.fromDay, range.toDay],
  );
  // A record closes (and is priced) as the metering clock passes an hour: the report is read again.
  useSubscription('subscription UsageLive($p: ID) { usageRecorded(projectId: $p) { resourceId } }', { p: window.p }, () => report.reload(), [window.p]);

  const submit = (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    setRange({ ...range, fromDay: String(data.get('from') ?? ''), toDay: String(data.get('to') ?? '') });
  };
  const u = report.data?.usage;
  const format = money(u?.currency ?? 'EUR');
  const [projectName, setProjectName] = useState(session.projectName);
  return (
    <section aria-labelledby="usage-title">
      <h1 id="usage-title">Usage</h1>
      <form onSubmit={submit} class="panel-form range-form" aria-label="Usage range" noValidate>
        <div class="form-grid">
          {admin && (
            <div>
              <ProjectPicker
                value={range.projectId}
                onPick={(p) => {
                  setProjectName(p.name);
                  setRange({ ...range, projectId: p.id });
                }}
              />
            </div>
          )}
          <div>
            <Field form="usage" name="from" label="From" error={report.error ?? null} type="date" defaultValue={range.fromDay} required />
          </div>
          <div>
            <Field form="usage" name="to" label="To (inclusive)" error={report.error ?? null} type="date" defaultValue={range.toDay} required />
          </div>
          <div class="range-submit">
            <button type="submit" class="primary">
              Show usage
            </button>
          </div>
        </div>
      </form>
      <ErrorNote error={unplacedError(report.error ?? null, ['from', 'to'])} />
      {!report.data && !report.error ? (
        <Loading />
      ) : !u ? (
        report.data && <p class="muted">No usage to show for this project.</p>
      ) : (
        <>
          <p class="usage-summary" aria-live="polite">
            <strong>{format(u.cost)}</strong> for {projectName ?? 'the project'} from {dayLabel(range.fromDay)} to {dayLabel(range.toDay)}
          </p>
          <div class="table-wrap">
            <table aria-label="Usage totals">
              <thead>
                <tr>
                  <th scope="col">Usage type</th>
                  <th scope="col">Quantity</th>
                  <th scope="col">Cost</th>
                </tr>
              </thead>
              <tbody>
                {u.totals.length === 0 && (
                  <tr>
                    <td colSpan={3} class="muted">
                      No usage in this range.
                    </td>
                  </tr>
                )}
                {u.totals.map((t) => (
                  <tr key={t.usageType} data-usage-type={t.usageType}>
                    <th scope="row">{t.usageType}</th>
                    <td>
                      {amount(t.quantity)} {t.unit.toLowerCase().replace('_', '-')}
                    </td>
                    <td>{format(t.cost)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div class="chart-grid-cards">
            {u.totals.map((t) => {
              const records = u.records.filter((r) => r.usageType === t.usageType);
              // Unpriced usage has no cost to draw: its quantity is drawn instead, and the title says so.
              const priced = t.cost > 0;
              return (
                <BarChart
                  key={t.usageType}
                  id={`usage-${t.usageType}`}
                  title={priced ? `${t.usageType} cost per day` : `${t.usageType} ${t.unit.toLowerCase().replace('_', '-')} per day (no price set)`}
                  total={priced ? format(t.cost) : `${amount(t.quantity)} ${t.unit.toLowerCase().replace('_', '-')}`}
                  bars={perDay(records, u.from, u.to, (r) => (priced ? (r.cost ?? 0) : r.quantity))}
                  format={priced ? format : amount}
                />
              );
            })}
          </div>
        </>
      )}
    </section>
  );
}
