import type { Migration } from './migrations.js';

/** The channel every append notifies, in the appending transaction (delivered on commit). */
export const EVENTS_CHANNEL = 'stratus_events';

/** The first key of the advisory lock an append takes on its stream; the second is the stream id's hash. */
export const APPEND_LOCK_CLASS = 726_1001;

/**
 * The event log's tables. Ordering: `position` is taken from a sequence at insert time but becomes
 * visible at commit, so positions commit out of order under concurrency. Readers of the global feed
 * therefore order by (transaction_id, position) and only read rows whose transaction is older than the
 * oldest transaction still running (`pg_snapshot_xmin`), the technique of Emmett's PostgreSQL store.
 * `transaction_id` is xid8 (64-bit, never wraps), so it orders correctly forever.
 */
export const eventLogMigrations: Migration[] = [
  {
    id: 'eventstore/001-events',
    sql: `
CREATE TABLE events (
  position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
  id uuid NOT NULL UNIQUE,
  stream_id text NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  type text NOT NULL,
  data jsonb NOT NULL,
  metadata jsonb NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stream_id, version)
);
CREATE INDEX events_feed ON events (transaction_id, position);

-- One row per stream holding its last version: appends to a stream lock this row, so they queue
-- instead of racing on (stream_id, version). version 0 = the stream has no events yet (a failed
-- first append can leave such a row).
CREATE TABLE event_streams (
  stream_id text PRIMARY KEY,
  version integer NOT NULL
);

-- Invariant 1: the log is append-only, enforced by the database, not only by the code above it.
CREATE FUNCTION events_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
    USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- The whole append in one round trip: with one statement per append instead of six, the store keeps
-- up with plain INSERTs. p_expected: NULL = any, 0 = no stream yet, n = the stream's last version.
-- p_events: [{id, type, data, metadata}, ...]. p_notify: wake subscribers from inside this transaction
-- (for appends inside a caller's transaction, whose commit the store does not see). Returns the recorded rows with outcome 'appended' or
-- 'duplicate', or a single row with outcome 'wrong_version' / 'id_conflict' and the stream's version.
CREATE FUNCTION append_events(p_stream_id text, p_expected integer, p_events jsonb, p_notify boolean)
RETURNS TABLE (
  outcome text, stream_version integer,
  "position" text, transaction_id text, id uuid, stream_id text, version integer,
  type text, data jsonb, metadata jsonb, recorded_at timestamptz
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_current integer;
  v_count integer := jsonb_array_length(p_events);
  v_stored integer;
  v_stored_here integer;
  -- An array, not IN (SELECT ... jsonb_array_elements): the planner guesses 100 rows for the function
  -- and hash-joins a sequential scan of the whole log, making every append slower as the log grows.
  v_ids uuid[] := ARRAY(SELECT (x->>'id')::uuid FROM jsonb_array_elements(p_events) x);
BEGIN
  -- Lock the stream by moving its version on first (one write, no separate SELECT ... FOR UPDATE): a
  -- concurrent retry of this same batch waits here for the first try to commit and then sees its
  -- events below, instead of failing on versions. The rare paths below put the version back.
  UPDATE event_streams s SET version = s.version + v_count WHERE s.stream_id = p_stream_id
    RETURNING s.version - v_count INTO v_current;
  IF NOT FOUND THEN
    INSERT INTO event_streams AS s (stream_id, version) VALUES (p_stream_id, v_count) ON CONFLICT DO NOTHING;
    IF FOUND THEN
      v_current := 0;
    ELSE -- created concurrently, and committed by now
      UPDATE event_streams s SET version = s.version + v_count WHERE s.stream_id = p_stream_id
        RETURNING s.version - v_count INTO v_current;
    END IF;
  END IF;

  -- Idempotency is checked before the expected version: a retry of a batch that already committed
  -- would otherwise fail on the version its own first try advanced.
  SELECT count(*), count(*) FILTER (WHERE e.stream_id = p_stream_id) INTO v_stored, v_stored_here
    FROM events e WHERE e.id = ANY(v_ids);
  IF v_stored > 0 THEN
    UPDATE event_streams s SET version = v_current WHERE s.stream_id = p_stream_id;
    IF v_stored = v_count AND v_stored_here = v_count THEN
      RETURN QUERY SELECT 'duplicate'::text, v_current, e.position::text, e.transaction_id::text, e.id,
          e.stream_id, e.version, e.type, e.data, e.metadata, e.recorded_at
        FROM events e WHERE e.id = ANY(v_ids)
        ORDER BY e.position;
    ELSE
      RETURN QUERY SELECT 'id_conflict'::text, v_current, NULL::text, NULL::text, NULL::uuid, NULL::text,
        NULL::integer, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz;
    END IF;
    RETURN;
  END IF;

  IF p_expected IS NOT NULL AND p_expected <> v_current THEN
    UPDATE event_streams s SET version = v_current WHERE s.stream_id = p_stream_id;
    RETURN QUERY SELECT 'wrong_version'::text, v_current, NULL::text, NULL::text, NULL::uuid, NULL::text,
      NULL::integer, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz;
    RETURN;
  END IF;

  RETURN QUERY INSERT INTO events AS e (id, stream_id, version, type, data, metadata)
    SELECT (x.value->>'id')::uuid, p_stream_id, v_current + x.ordinality::integer, x.value->>'type',
        x.value->'data', x.value->'metadata'
      FROM jsonb_array_elements(p_events) WITH ORDINALITY x ORDER BY x.ordinality
    RETURNING 'appended'::text, v_current + v_count, e.position::text, e.transaction_id::text, e.id,
      e.stream_id, e.version, e.type, e.data, e.metadata, e.recorded_at;
  IF p_notify THEN
    PERFORM pg_notify('${EVENTS_CHANNEL}', '');
  END IF;
END $$;
`,
  },
  {
    // Appends to one stream queue on a transaction-scoped advisory lock on the stream instead of on an
    // event_streams row: the lock lives in shared memory and writes no WAL, while moving the row's
    // version wrote a heap tuple and its WAL on every append (bench:eventstore: ~1/5 of an append's
    // cost with synchronous_commit on). The stream's version is the greatest version stored, read after
    // the lock, so it is the latest committed one. Same results as 001's function, row for row.
    id: 'eventstore/002-append-under-advisory-lock',
    sql: `
CREATE OR REPLACE FUNCTION append_events(p_stream_id text, p_expected integer, p_events jsonb, p_notify boolean)
RETURNS TABLE (
  outcome text, stream_version integer,
  "position" text, transaction_id text, id uuid, stream_id text, version integer,
  type text, data jsonb, metadata jsonb, recorded_at timestamptz
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_current integer;
  v_count integer := jsonb_array_length(p_events);
  v_stored integer;
  v_stored_here integer;
  -- An array, not IN (SELECT ... jsonb_array_elements): see 001.
  v_ids uuid[] := ARRAY(SELECT (x->>'id')::uuid FROM jsonb_array_elements(p_events) x);
BEGIN
  -- A concurrent retry of this same batch waits here for the first try to commit and then sees its
  -- events below. Two streams whose names hash alike only queue behind each other.
  PERFORM pg_advisory_xact_lock(${APPEND_LOCK_CLASS}, hashtext(p_stream_id));
  SELECT coalesce(max(e.version), 0) INTO v_current FROM events e WHERE e.stream_id = p_stream_id;

  -- Idempotency is checked before the expected version: a retry of a batch that already committed
  -- would otherwise fail on the version its own first try advanced.
  SELECT count(*), count(*) FILTER (WHERE e.stream_id = p_stream_id) INTO v_stored, v_stored_here
    FROM events e WHERE e.id = ANY(v_ids);
  IF v_stored > 0 THEN
    IF v_stored = v_count AND v_stored_here = v_count THEN
      RETURN QUERY SELECT 'duplicate'::text, v_current, e.position::text, e.transaction_id::text, e.id,
          e.stream_id, e.version, e.type, e.data, e.metadata, e.recorded_at
        FROM events e WHERE e.id = ANY(v_ids)
        ORDER BY e.position;
    ELSE
      RETURN QUERY SELECT 'id_conflict'::text, v_current, NULL::text, NULL::text, NULL::uuid, NULL::text,
        NULL::integer, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz;
    END IF;
    RETURN;
  END IF;

  IF p_expected IS NOT NULL AND p_expected <> v_current THEN
    RETURN QUERY SELECT 'wrong_version'::text, v_current, NULL::text, NULL::text, NULL::uuid, NULL::text,
      NULL::integer, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz;
    RETURN;
  END IF;

  RETURN QUERY INSERT INTO events AS e (id, stream_id, version, type, data, metadata)
    SELECT (x.value->>'id')::uuid, p_stream_id, v_current + x.ordinality::integer, x.value->>'type',
        x.value->'data', x.value->'metadata'
      FROM jsonb_array_elements(p_events) WITH ORDINALITY x ORDER BY x.ordinality
    RETURNING 'appended'::text, v_current + v_count, e.position::text, e.transaction_id::text, e.id,
      e.stream_id, e.version, e.type, e.data, e.metadata, e.recorded_at;
  IF p_notify THEN
    PERFORM pg_notify('${EVENTS_CHANNEL}', '');
  END IF;
END $$;
DROP TABLE event_streams;
`,
  },
  {
    // The append most calls make, a batch at an expected version outside a caller's transaction, without
    // the idempotency check up front: a retry of a batch that already committed finds the stream past
    // the version it expects, and only then are its ids looked up (answering 'duplicate' as before). A
    // batch whose ids are stored already while the stream is at the expected version fails on the id's
    // unique index (23505); the store then asks append_events, which tells a retry from a conflict. The
    // up-front lookup was one index probe per event on every append (bench:eventstore: ~1/6 of the cost).
    id: 'eventstore/003-append-at-expected-version',
    sql: `
CREATE FUNCTION append_events_at(p_stream_id text, p_expected integer, p_events jsonb)
RETURNS TABLE (
  outcome text, stream_version integer,
  "position" text, transaction_id text, id uuid, stream_id text, version integer,
  type text, data jsonb, metadata jsonb, recorded_at timestamptz
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_current integer;
  v_count integer := jsonb_array_length(p_events);
BEGIN
  PERFORM pg_advisory_xact_lock(${APPEND_LOCK_CLASS}, hashtext(p_stream_id));
  SELECT coalesce(max(e.version), 0) INTO v_current FROM events e WHERE e.stream_id = p_stream_id;
  IF p_expected <> v_current THEN
    -- A retry of a committed batch, or a writer that lost a race: append_events tells which.
    RETURN QUERY SELECT * FROM append_events(p_stream_id, p_expected, p_events, false);
    RETURN;
  END IF;
  RETURN QUERY INSERT INTO events AS e (id, stream_id, version, type, data, metadata)
    SELECT (x.value->>'id')::uuid, p_stream_id, v_current + x.ordinality::integer, x.value->>'type',
        x.value->'data', x.value->'metadata'
      FROM jsonb_array_elements(p_events) WITH ORDINALITY x ORDER BY x.ordinality
    RETURNING 'appended'::text, v_current + v_count, e.position::text, e.transaction_id::text, e.id,
      e.stream_id, e.version, e.type, e.data, e.metadata, e.recorded_at;
END $$;
`,
  },
];
