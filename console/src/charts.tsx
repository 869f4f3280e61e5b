/**
 * Small SVG charts, drawn here rather than by a charting library (the console stays one small bundle).
 * Each is an image with a summary in words for screen readers, and its numbers in a table under a
 * disclosure, so nothing on a chart is only a picture.
 */
import type { ComponentChildren } from 'preact';

// Close to a chart card's width on a laptop, so the axis text is drawn near its CSS size.
const W = 400;
const H = 180;
const PAD = { left: 58, right: 10, top: 10, bottom: 24 };

/** A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= max) ?? 10 * p;
}

/** An axis end: to the second when the axis spans less than an hour, else to the minute. */
const axisLabel = (t: number, span: number) =>
  new Date(t).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', ...(span < 3_600_000 ? { second: '2-digit' } : {}) });

export interface Point {
  at: number;
  value: number;
  /** The instant as the API gave it, kept for the table. */
  iso: string;
}

function Frame({ max, format, children, xLabels, empty = false }: { max: number; format: (n: number) => string; children: ComponentChildren; xLabels: [string, string] | null; empty?: boolean }) {
  const ys = [0, 0.5, 1];
  return (
    <>
      {ys.map((f) => {
        const y = PAD.top + (1 - f) * (H - PAD.top - PAD.bottom);
        return (
          <g key={f}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y} y2={y} class="chart-grid" />
            {!empty && (
              <text x={PAD.left - 6} y={y + 4} text-anchor="end" class="chart-axis">
                {format(max * f)}
              </text>
            )}
          </g>
        );
      })}
      {children}
      {xLabels && (
        <>
          <text x={PAD.left} y={H - 6} class="chart-axis">
            {xLabels[0]}
          </text>
          <text x={W - PAD.right} y={H - 6} text-anchor="end" class="chart-axis">
            {xLabels[1]}
          </text>
        </>
      )}
    </>
  );
}

/** A time series over [from, to): a line with its area, the newest value in the title. */
export function LineChart({ id, title, points, from, to, format }: { id: string; title: string; points: Point[]; from: number; to: number; format: (n: number) => string }) {
  const max = niceMax(Math.max(0, ...points.map((p) => p.value)));
  // The axis starts at the first sample when the samples began inside the range (a new instance), so they fill it.
  const start = points.length >= 2 ? Math.max(from, points[0]!.at) : from;
  const x = (t: number) => PAD.left + ((t - start) / Math.max(to - start, 1)) * (W - PAD.left - PAD.right);
  const y = (v: number) => PAD.top + (1 - v / max) * (H - PAD.top - PAD.bottom);
  const line = points.map((p) => `${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const latest = points.at(-1);
  const summary = latest
    ? `${title}: ${points.length} samples, latest ${format(latest.value)}, highest ${format(Math.max(...points.map((p) => p.value)))}`
    : `${title}: no samples in this range`;
  return (
    <figure class="chart" aria-labelledby={`${id}-title`}>
      <figcaption id={`${id}-title`}>
        <span class="chart-title">{title}</span> <span class="chart-latest">{latest ? format(latest.value) : '—'}</span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary}>
        <Frame max={max} format={format} xLabels={[axisLabel(start, to - start), axisLabel(to, to - start)]} empty={points.length === 0}>
          {points.length > 1 && <polygon class="chart-area" points={`${x(points[0]!.at)},${y(0)} ${line} ${x(points.at(-1)!.at)},${y(0)}`} />}
          {points.length > 0 && <polyline class="chart-line" points={line} />}
          {points.length === 1 && <circle class="chart-dot" cx={x(points[0]!.at)} cy={y(points[0]!.value)} r={3} />}
        </Frame>
        {points.length === 0 && (
          <text x={W / 2} y={H / 2} text-anchor="middle" class="chart-empty">
            No samples in this range
          </text>
        )}
      </svg>
      <DataTable label={`${title} samples`} rows={points.map((p) => ({ key: p.iso, label: new Date(p.at).toLocaleString(), iso: p.iso, value: p.value, text: format(p.value) }))} />
    </figure>
  );
}

/** Bars over labelled buckets (days of a usage report), the total in the title. */
export function BarChart({ id, title, bars, format, total }: { id: string; title: string; bars: { key: string; label: string; value: number }[]; format: (n: number) => string; total: string }) {
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  const inner = W - PAD.left - PAD.right;
  const slot = inner / Math.max(bars.length, 1);
  const y = (v: number) => PAD.top + (1 - v / max) * (H - PAD.top - PAD.bottom);
  const busiest = bars.reduce<(typeof bars)[number] | null>((m, b) => (!m || b.value > m.value ? b : m), null);
  const summary = `${title}: ${total} over ${bars.length} days${busiest && busiest.value > 0 ? `, most on ${busiest.label} (${format(busiest.value)})` : ''}`;
  return (
    <figure class="chart" aria-labelledby={`${id}-title`}>
      <figcaption id={`${id}-title`}>
        <span class="chart-title">{title}</span> <span class="chart-latest">{total}</span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary}>
        <Frame max={max} format={format} xLabels={bars.length > 14 ? [bars[0]?.label ?? '', bars.at(-1)?.label ?? ''] : null}>
          {bars.length <= 14 &&
            bars.map((b, i) => (
              <text key={`l-${b.key}`} x={PAD.left + (i + 0.5) * slot} y={H - 6} text-anchor="middle" class="chart-axis">
                {b.label}
              </text>
            ))}
          {bars.map((b, i) => (
            <rect
              key={b.key}
              class="chart-bar"
              x={PAD.left + i * slot + slot * 0.15}
              width={Math.max(slot * 0.7, 1)}
              y={y(b.value)}
              height={Math.max(y(0) - y(b.value), 0)}
            >
              <title>
                {b.label}: {format(b.value)}
              </title>
            </rect>
          ))}
        </Frame>
      </svg>
      <DataTable label={`${title} by day`} rows={bars.filter((b) => b.value !== 0).map((b) => ({ key: b.key, label: b.label, iso: b.key, value: b.value, text: format(b.value) }))} />
    </figure>
  );
}

function DataTable({ label, rows }: { label: string; rows: { key: string; label: string; iso: string; value: number; text: string }[] }) {
  return (
    <details class="chart-data">
      <summary>Numbers</summary>
      <table class="compact" aria-label={label}>
        <tbody>
          {rows.length === 0 && (
            <tr>
              <td class="muted">None.</td>
            </tr>
          )}
          {rows.map((r) => (
            <tr key={r.key} data-at={r.iso} data-value={String(r.value)}>
              <th scope="row">{r.label}</th>
              <td>{r.text}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
