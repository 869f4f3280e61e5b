import { z } from 'zod';
import type { EventOf } from './decider.js';
import { Id, Timestamp } from './scalars.js';

/** CloudStack's usage types (CONTRACT.md `UsageRecord.usageType`). */
export const UsageType = z.enum(['RUNNING_VM', 'ALLOCATED_VM', 'VOLUME', 'VOLUME_SNAPSHOT', 'IMAGE', 'FLOATING_IP']);
export type UsageType = z.infer<typeof UsageType>;

export const UsageUnit = z.enum(['HOURS', 'GB_HOURS']);
export type UsageUnit = z.infer<typeof UsageUnit>;

export const unitOf: Record<UsageType, UsageUnit> = {
  RUNNING_VM: 'HOURS',
  ALLOCATED_VM: 'HOURS',
  FLOATING_IP: 'HOURS',
  VOLUME: 'GB_HOURS',
  VOLUME_SNAPSHOT: 'GB_HOURS',
  IMAGE: 'GB_HOURS',
};

/**
 * What a resource is being charged for right now: one usage type, and for storage its size in GB
 * (1 for the hourly types). The flavor is kept so RUNNING_VM can be priced per flavor.
 */
export const Meter = z.object({ usageType: UsageType, size: z.number().nonnegative(), flavorId: Id.nullable() });
export type Meter = z.infer<typeof Meter>;

/** An interval still open: the meter has run since `since` and nothing has closed it yet. */
export const OpenUsage = Meter.extend({
  resourceId: z.string(),
  resourceType: z.string(),
  projectId: Id,
  since: Timestamp,
});
export type OpenUsage = z.infer<typeof OpenUsage>;

/** One closed piece of usage, never crossing a clock hour (CloudStack's usage server's hourly records). */
export const UsageRecord = OpenUsage.omit({ since: true }).extend({
  quantity: z.number().nonnegative(),
  unit: UsageUnit,
  start: Timestamp,
  end: Timestamp,
});
export type UsageRecord = z.infer<typeof UsageRecord>;

const HOUR_MS = 3_600_000;

/** The start of the clock hour `ms` falls in (UTC; hours are the same everywhere that matters for billing). */
export const hourFloor = (ms: number): number => Math.floor(ms / HOUR_MS) * HOUR_MS;

/**
 * The records for `open` from its start until `untilMs`, one per clock hour touched. Quantities come
 * from the two timestamps alone, so a replay computes the same numbers to the bit.
 */
export function recordsUntil(open: OpenUsage, untilMs: number): UsageRecord[] {
  const { since, ...meter } = open;
  const records: UsageRecord[] = [];
  for (let start = Date.parse(since); start < untilMs; ) {
    const end = Math.min(hourFloor(start) + HOUR_MS, untilMs);
    records.push({
      ...meter,
      quantity: ((end - start) / HOUR_MS) * meter.size,
      unit: unitOf[meter.usageType],
      start: new Date(start).toISOString(),
      end: new Date(end).toISOString(),
    });
    start = end;
  }
  return records;
}

export const sameMeter = (a: Meter, b: Meter): boolean => a.usageType === b.usageType && a.size === b.size && a.flavorId === b.flavorId;

/**
 * A meter a resource's state runs, for the resource itself or for a part of it that is billed on its
 * own: a volume's snapshots and an external network's floating addresses live on the volume's and the
 * network's streams but are records of their own, with their own id, type and (for an address) project.
 */
export type SubjectMeter = Meter & Partial<Pick<OpenUsage, 'resourceId' | 'resourceType' | 'projectId'>>;

/**
 * Moves a resource from the meters it had to the meters it has after an event at `at`: a meter that
 * stopped or changed (a resize, a volume extended) is closed, a new or changed one opened. Returns the
 * records closed and the intervals open afterwards. A meter with no project (a public image an admin
 * registered) is nobody's to bill and is not opened.
 */
export function changeMeters(
  open: readonly OpenUsage[],
  wanted: readonly SubjectMeter[],
  subject: { resourceId: string; resourceType: string; projectId: string | null },
  at: string,
): { records: UsageRecord[]; open: readonly OpenUsage[] } {
  const same = (w: SubjectMeter, o: OpenUsage) => (w.resourceId ?? subject.resourceId) === o.resourceId && sameMeter(w, o);
  // Most events (a task started or finished) change no meter: the open intervals stay as they are, the same array.
  if (open.length === wanted.length && wanted.every((w, i) => same(w, open[i]!))) return { records: [], open };
  const atMs = Date.parse(at);
  const records: UsageRecord[] = [];
  const next: OpenUsage[] = [];
  for (const o of open) {
    if (wanted.some((w) => same(w, o))) next.push(o);
    else records.push(...recordsUntil(o, atMs));
  }
  for (const w of wanted) {
    const projectId = w.projectId ?? subject.projectId;
    if (projectId !== null && !next.some((o) => same(w, o))) {
      next.push({
        usageType: w.usageType,
        size: w.size,
        flavorId: w.flavorId,
        resourceId: w.resourceId ?? subject.resourceId,
        resourceType: w.resourceType ?? subject.resourceType,
        projectId,
        since: new Date(atMs).toISOString(),
      });
    }
  }
  return { records, open: next };
}

/**
 * The hours that ended before `at`, closed on an interval still open: its records up to the last hour
 * boundary, and the interval reopened there. Closing at boundaries only, the records are the same
 * whether a tick or the resource's own next event closes them, so ticks change when records appear,
 * never what they say.
 */
export function closeEndedHours(open: OpenUsage, at: string): { records: UsageRecord[]; open: OpenUsage } {
  const boundary = hourFloor(Date.parse(at));
  if (Date.parse(open.since) >= boundary) return { records: [], open };
  return { records: recordsUntil(open, boundary), open: { ...open, since: new Date(boundary).toISOString() } };
}

/** The stream of the metering clock's ticks: one per hour, so two tickers racing store one. */
export const meteringClockStream = (hourStart: string) => `meteringclock-${hourStart}`;

export const usageEvents = {
  /**
   * The metering clock (workflows/meteringClock.ts) saw the time pass `at`: every interval still open
   * is closed at the hour boundaries before it. Appended by a durable Temporal timer, so the closing is
   * in the log and a rebuild closes the same hours.
   */
  UsageClockTicked: z.object({ at: Timestamp }),
} satisfies Record<string, z.ZodType>;
export type UsageEvent = EventOf<typeof usageEvents>;
