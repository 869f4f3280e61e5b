import { z } from 'zod';
import { DEFAULT_CURRENCY, priceAt, type Price } from './priceSheet.js';
import { Id, Timestamp } from './scalars.js';
import { unitOf, type UsageRecord, type UsageType, type UsageUnit } from './usage.js';

export interface RatedRecord extends UsageRecord {
  /** The price per unit; a record that a price change cut in two shows its average. */
  rate: number | null;
  cost: number;
  description: string;
}

export interface UsageTotal {
  usageType: UsageType;
  quantity: number;
  unit: UsageUnit;
  cost: number;
}

export interface UsageReport {
  projectId: string;
  from: string;
  to: string;
  records: RatedRecord[];
  totals: UsageTotal[];
  cost: number;
  currency: string;
}

/** The part of `record` inside [fromMs, toMs), its quantity in proportion to the time kept; null when none is. */
function clip(record: UsageRecord, fromMs: number, toMs: number): UsageRecord | null {
  const s = Date.parse(record.start);
  const e = Date.parse(record.end);
  const cs = Math.max(s, fromMs);
  const ce = Math.min(e, toMs);
  if (ce <= cs) return null;
  if (cs === s && ce === e) return record;
  return { ...record, start: new Date(cs).toISOString(), end: new Date(ce).toISOString(), quantity: (record.quantity * (ce - cs)) / (e - s) };
}

/**
 * Prices one record. A price set during the record applies from its moment on, never to the minutes
 * before it (CloudStack's tariffs are not retroactive either), so the record is costed in pieces cut at
 * each price change inside it.
 */
function rate(record: UsageRecord, prices: readonly Price[]): { rate: number | null; cost: number } {
  const s = Date.parse(record.start);
  const e = Date.parse(record.end);
  const cuts = [s, ...prices.map((p) => Date.parse(p.effectiveFrom)).filter((t) => t > s && t < e), e].sort((a, b) => a - b);
  let cost = 0;
  const rates = new Set<number>();
  for (let i = 0; i + 1 < cuts.length; i++) {
    const price = priceAt(prices, record.usageType, record.flavorId, new Date(cuts[i]!).toISOString());
    if (!price) continue;
    rates.add(price.unitPrice);
    cost += price.unitPrice * ((record.quantity * (cuts[i + 1]! - cuts[i]!)) / (e - s || 1));
  }
  // One price over the whole record: that price exactly, not a quotient that floating point blurs.
  if (rates.size <= 1) return { rate: rates.size === 1 ? [...rates][0]! : null, cost };
  return { rate: record.quantity > 0 ? cost / record.quantity : 0, cost };
}

const describe = (r: UsageRecord) =>
  `${r.usageType} of ${r.resourceType} ${r.resourceId}${r.flavorId ? ` (flavor ${r.flavorId})` : ''}${r.unit === 'GB_HOURS' ? `, ${r.size} GB` : ''}`;

/** The project's usage between `from` and `to`: records cut to the window, priced, and summed per usage type. */
export function usageReport(projectId: string, from: string, to: string, records: readonly UsageRecord[], prices: readonly Price[]): UsageReport {
  const fromMs = Date.parse(from);
  const toMs = Date.parse(to);
  const rated: RatedRecord[] = [];
  for (const record of records) {
    const inWindow = clip(record, fromMs, toMs);
    if (inWindow) rated.push({ ...inWindow, ...rate(inWindow, prices), description: describe(inWindow) });
  }
  const totals = new Map<UsageType, UsageTotal>();
  for (const r of rated) {
    const t = totals.get(r.usageType) ?? { usageType: r.usageType, quantity: 0, unit: unitOf[r.usageType], cost: 0 };
    t.quantity += r.quantity;
    t.cost += r.cost;
    totals.set(r.usageType, t);
  }
  return {
    projectId,
    from: new Date(fromMs).toISOString(),
    to: new Date(toMs).toISOString(),
    records: rated,
    totals: [...totals.values()].sort((a, b) => a.usageType.localeCompare(b.usageType)),
    cost: rated.reduce((sum, r) => sum + r.cost, 0),
    currency: prices.at(-1)?.currency ?? DEFAULT_CURRENCY,
  };
}

/** CONTRACT.md `usage(projectId, from, to)`: a window that ends after it starts, at most a little over a year. */
export const UsageQuery = z
  .object({ projectId: Id.optional(), from: Timestamp, to: Timestamp })
  .refine((q) => Date.parse(q.from) < Date.parse(q.to), { message: '`to` must be after `from`', path: ['to'] })
  .refine((q) => Date.parse(q.to) - Date.parse(q.from) <= 367 * 86_400_000, { message: 'a usage window is at most 367 days', path: ['to'] });
export type UsageQuery = z.infer<typeof UsageQuery>;
