import type { Migration } from '../eventstore/index.js';

/**
 * The pollsters' time series (Gnocchi's archive policy, in two tiers): raw samples for a day, then one
 * hourly average per resource and meter. Not derived from the event log (samples are readings, not
 * events), so no rebuild touches them; migrated with the read model so the API always finds them.
 */
export const meterMigrations: Migration[] = [
  {
    id: 'meters/001-samples',
    sql: `
      CREATE TABLE meter_samples (
        resource_id uuid NOT NULL,
        project_id uuid NOT NULL,
        meter text NOT NULL,
        at timestamptz NOT NULL,
        value double precision NOT NULL,
        unit text NOT NULL,
        PRIMARY KEY (resource_id, meter, at)
      );
      CREATE INDEX meter_samples_at ON meter_samples (at);
      CREATE TABLE meter_samples_hourly (
        resource_id uuid NOT NULL,
        project_id uuid NOT NULL,
        meter text NOT NULL,
        hour timestamptz NOT NULL,
        value double precision NOT NULL,
        samples integer NOT NULL,
        unit text NOT NULL,
        PRIMARY KEY (resource_id, meter, hour)
      );`,
  },
];

/** Raw samples are kept this long; older ones live on as hourly averages. */
export const RAW_RETENTION_MS = 24 * 3_600_000;
