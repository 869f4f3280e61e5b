import { parseStreamId } from '../domain/events.js';
import { PRICE_SHEET_STREAM } from '../domain/priceSheet.js';
import { changeMeters, closeEndedHours, hourFloor, type OpenUsage, type UsageRecord, type UsageType } from '../domain/usage.js';
import type { Queryable } from '../eventstore/index.js';
import type { Change, Projection, StratusEvent } from './projection.js';
import { eventTime, usageSourceOf, usageSources } from './usageSources.js';

export const USAGE_PROJECTION = 'usage';

const ROWS_PER_STATEMENT = 5000;

/** A record's key in a `usage` change and in `usageRecord`: one resource, one usage type, one start. */
export const usageRecordKey = (r: Pick<UsageRecord, 'resourceId' | 'usageType' | 'start'>) => `${r.resourceId}|${r.usageType}|${r.start}`;

interface OpenRow {
  subject_id: string;
  resource_id: string;
  usage_type: UsageType;
  resource_type: string;
  project_id: string;
  size: number;
  flavor_id: string | null;
  since: Date;
}

const openFromRow = (r: OpenRow): OpenUsage => ({
  resourceId: r.resource_id,
  resourceType: r.resource_type,
  projectId: r.project_id,
  usageType: r.usage_type,
  size: r.size,
  flavorId: r.flavor_id,
  since: r.since.toISOString(),
});

/**
 * The consumer's state of the resources a batch touches, and which of them the batch changed; `open`
 * is keyed by the subject (the stream's resource), whose intervals include its parts' (a volume's snapshots).
 */
interface FoldState {
  docs: Map<string, unknown>;
  open: Map<string, readonly OpenUsage[]>;
  touchedDocs: Set<string>;
  touchedOpen: Set<string>;
}

const NONE_OPEN: readonly OpenUsage[] = [];

const emptyState = (): FoldState => ({ docs: new Map(), open: new Map(), touchedDocs: new Set(), touchedOpen: new Set() });

/** Loads what `events` need: the state of each resource they name, and for a tick every interval it may close. */
async function loadState(tx: Queryable, events: readonly StratusEvent[]): Promise<FoldState> {
  const state = emptyState();
  const subjectIds = new Set<string>();
  let tickBoundary = -Infinity;
  for (const e of events) {
    if (usageSourceOf(e.streamId)) subjectIds.add(parseStreamId(e.streamId)!.id);
    else if (e.type === 'UsageClockTicked') tickBoundary = Math.max(tickBoundary, hourFloor(Date.parse(e.data.at)));
  }
  const ids = [...subjectIds];
  if (ids.length > 0) {
    const rows = await tx.query<{ id: string; doc: unknown }>('SELECT id, doc FROM usage_subjects WHERE id = ANY($1::text[])', [ids]);
    for (const r of rows) state.docs.set(r.id, r.doc);
  }
  const openRows = ids.length > 0 ? await tx.query<OpenRow>('SELECT * FROM usage_open WHERE subject_id = ANY($1::text[])', [ids]) : [];
  // A tick closes every interval opened before its hour, whichever resource it belongs to.
  if (Number.isFinite(tickBoundary)) {
    openRows.push(...(await tx.query<OpenRow>('SELECT * FROM usage_open WHERE since < $1 AND NOT subject_id = ANY($2::text[])', [new Date(tickBoundary), ids])));
  }
  for (const r of openRows) state.open.set(r.subject_id, [...(state.open.get(r.subject_id) ?? []), openFromRow(r)]);
  return state;
}

/** Folds `events` into `state` in memory; returns the records they closed and the prices they set. */
function foldUsage(state: FoldState, events: readonly StratusEvent[]) {
  const { docs, open, touchedDocs, touchedOpen } = state;
  const records: UsageRecord[] = [];
  const prices: { position: string; data: unknown }[] = [];
  for (const e of events) {
    const source = usageSourceOf(e.streamId);
    if (source) {
      const id = parseStreamId(e.streamId)!.id;
      const doc = source.evolve(docs.get(id) ?? null, e);
      docs.set(id, doc);
      touchedDocs.add(id);
      if (doc === null) continue;
      const subject = { resourceId: id, resourceType: source.resourceType, projectId: source.projectOf(doc) };
      const before = open.get(id) ?? NONE_OPEN;
      const after = changeMeters(before, source.meters(doc), subject, eventTime(e));
      if (after.open !== before && (after.records.length > 0 || after.open.length !== before.length || after.open.some((o, i) => o !== before[i]))) {
        records.push(...after.records);
        open.set(id, after.open);
        touchedOpen.add(id);
      }
    } else if (e.type === 'UsageClockTicked') {
      for (const [id, intervals] of open) {
        let closedAny = false;
        const next = intervals.map((o) => {
          const closed = closeEndedHours(o, e.data.at);
          if (closed.records.length > 0) {
            records.push(...closed.records);
            closedAny = true;
          }
          return closed.open;
        });
        if (closedAny) {
          open.set(id, next);
          touchedOpen.add(id);
        }
      }
    } else if (e.type === 'PriceSet') {
      prices.push({ position: e.position, data: e.data });
    }
  }
  return { records, prices };
}

/** Runs `statement` over `rows` in slices, each one jsonb parameter of bounded size. */
async function inSlices<T>(tx: Queryable, rows: readonly T[], statement: string, toJson: (row: T) => unknown): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    await tx.query(statement, [JSON.stringify(rows.slice(i, i + ROWS_PER_STATEMENT).map(toJson))]);
  }
}

/** Writes back the resources the fold changed, and forgets that they changed. */
async function writeState(tx: Queryable, state: FoldState): Promise<void> {
  const docs = [...state.touchedDocs].flatMap((id) => {
    const doc = state.docs.get(id);
    return doc == null ? [] : [{ id, doc }];
  });
  await inSlices(
    tx,
    docs,
    `INSERT INTO usage_subjects (id, doc) SELECT x.id, x.doc FROM jsonb_to_recordset($1::jsonb) AS x(id text, doc jsonb)
     ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc`,
    (d) => d,
  );
  if (state.touchedOpen.size > 0) {
    const touched = [...state.touchedOpen];
    await tx.query('DELETE FROM usage_open WHERE subject_id = ANY($1::text[])', [touched]);
    await inSlices(
      tx,
      touched.flatMap((id) => (state.open.get(id) ?? []).map((o) => ({ subjectId: id, o }))),
      `INSERT INTO usage_open (subject_id, resource_id, usage_type, resource_type, project_id, size, flavor_id, since)
       SELECT * FROM jsonb_to_recordset($1::jsonb)
         AS x("subjectId" text, "resourceId" text, "usageType" text, "resourceType" text, "projectId" uuid, size float8, "flavorId" uuid, since timestamptz)`,
      ({ subjectId, o }) => ({ subjectId, resourceId: o.resourceId, usageType: o.usageType, resourceType: o.resourceType, projectId: o.projectId, size: o.size, flavorId: o.flavorId, since: o.since }),
    );
  }
  state.touchedDocs.clear();
  state.touchedOpen.clear();
}

/**
 * Stores closed records and prices. In slices: a tick after a long outage can close a day of hours for
 * every instance at once, more than one jsonb parameter may hold.
 */
async function writeRecords(tx: Queryable, { records, prices }: ReturnType<typeof foldUsage>): Promise<Change[]> {
  await inSlices(
    tx,
    records,
    `INSERT INTO usage_records (resource_id, usage_type, start_at, end_at, resource_type, project_id, size, flavor_id, quantity, unit)
     SELECT * FROM jsonb_to_recordset($1::jsonb)
       AS x("resourceId" text, "usageType" text, start timestamptz, "end" timestamptz, "resourceType" text, "projectId" uuid,
            size float8, "flavorId" uuid, quantity float8, unit text)`,
    (r) => ({ resourceId: r.resourceId, usageType: r.usageType, start: r.start, end: r.end, resourceType: r.resourceType, projectId: r.projectId, size: r.size, flavorId: r.flavorId, quantity: r.quantity, unit: r.unit }),
  );
  for (const p of prices) {
    const d = p.data as { usageType: string; flavorId: string | null; unitPrice: number; currency: string; effectiveFrom: string };
    await tx.query(
      'INSERT INTO usage_prices (position, usage_type, flavor_id, unit_price, currency, effective_from) VALUES ($1, $2, $3, $4, $5, $6)',
      [p.position, d.usageType, d.flavorId, d.unitPrice, d.currency, d.effectiveFrom],
    );
  }
  return records.map((r) => ({ kind: 'usage', id: usageRecordKey(r), projectId: r.projectId }));
}

/**
 * Folds a batch of events in memory and writes what changed in a few set-wise statements: the state of
 * each metered resource (its domain doc, folded with the domain's evolve), its open intervals, the
 * records closed, and the prices set. Loading and writing once per batch, not per event, is what lets a
 * catch-up keep up with the log's own read speed.
 */
async function applyUsage(tx: Queryable, events: readonly StratusEvent[]): Promise<Change[]> {
  const state = await loadState(tx, events);
  const closed = foldUsage(state, events);
  await writeState(tx, state);
  return writeRecords(tx, closed);
}

/**
 * A rebuild starts from empty tables inside one transaction, so the whole state can live in memory
 * across its pages and be written once at the end: each page then costs its fold and its records only.
 */
async function applyUsageInRebuild(tx: Queryable, events: readonly StratusEvent[], session: { usage?: FoldState }): Promise<Change[]> {
  session.usage ??= emptyState();
  return writeRecords(tx, foldUsage(session.usage, events));
}

/**
 * The metering consumer (CloudStack's usage server): lifecycle events in, usage records per resource,
 * usage type and clock hour out. A projection like the others, so its checkpoint commits with its rows
 * and `rebuildProjection('usage')` replays it to the same records.
 */
export const usageProjection: Projection = {
  name: USAGE_PROJECTION,
  tables: ['usage_records', 'usage_open', 'usage_subjects', 'usage_prices'],
  streamPrefixes: [...usageSources.map((s) => s.streamPrefix), 'meteringclock-', `${PRICE_SHEET_STREAM}`],
  migrations: [
    {
      id: 'projections/usage/001-tables',
      sql: `
        CREATE TABLE usage_subjects (id text PRIMARY KEY, doc jsonb NOT NULL);
        CREATE TABLE usage_open (
          resource_id text NOT NULL,
          usage_type text NOT NULL,
          resource_type text NOT NULL,
          project_id uuid NOT NULL,
          size double precision NOT NULL,
          flavor_id uuid,
          since timestamptz NOT NULL,
          PRIMARY KEY (resource_id, usage_type)
        );
        CREATE INDEX usage_open_since ON usage_open (since);
        CREATE TABLE usage_records (
          resource_id text NOT NULL,
          usage_type text NOT NULL,
          start_at timestamptz NOT NULL,
          end_at timestamptz NOT NULL,
          resource_type text NOT NULL,
          project_id uuid NOT NULL,
          size double precision NOT NULL,
          flavor_id uuid,
          quantity double precision NOT NULL,
          unit text NOT NULL,
          PRIMARY KEY (resource_id, usage_type, start_at)
        );
        CREATE INDEX usage_records_project ON usage_records (project_id, start_at);
        CREATE TABLE usage_prices (
          position bigint PRIMARY KEY,
          usage_type text NOT NULL,
          flavor_id uuid,
          unit_price double precision NOT NULL,
          currency text NOT NULL,
          effective_from timestamptz NOT NULL
        );`,
    },
    {
      // Volumes, snapshots, images and floating addresses are metered too: an interval now belongs to
      // the stream's resource (its subject) as well as to its own id (a snapshot's, an address's). And
      // the consumer starts over from the log, since records derive from events alone: the resources
      // that existed before this version get their records as if they had always been metered.
      id: 'projections/usage/002-subjects',
      sql: `
        ALTER TABLE usage_open ADD COLUMN subject_id text;
        UPDATE usage_open SET subject_id = resource_id;
        ALTER TABLE usage_open ALTER COLUMN subject_id SET NOT NULL;
        CREATE INDEX usage_open_subject ON usage_open (subject_id);
        DELETE FROM usage_records;
        DELETE FROM usage_open;
        DELETE FROM usage_subjects;
        DELETE FROM usage_prices;
        UPDATE projection_checkpoints SET checkpoint = NULL, generation = generation + 1 WHERE name = 'usage';`,
    },
  ],
  apply: (tx, event) => applyUsage(tx, [event]),
  applyBatch: (tx, events, rebuild) => (rebuild ? applyUsageInRebuild(tx, events, rebuild) : applyUsage(tx, events)),
  finishRebuild: async (tx, rebuild: { usage?: FoldState }) => {
    if (rebuild.usage) await writeState(tx, rebuild.usage);
  },
};
