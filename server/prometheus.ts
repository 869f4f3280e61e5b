import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { isAdmin } from '../domain/identity.js';
import { checkpointFromString, onAppendTiming } from '../eventstore/index.js';
import { projectionNames } from '../projections/index.js';
import { authenticate, bearerToken } from '../schema/auth.js';
import { latestSamples } from '../schema/meterReads.js';
import { componentLog } from './log.js';
import type { Runtime } from './runtime.js';

const log = componentLog('metrics');

const sameSecret = (a: string, b: string) => timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

/**
 * `GET /metrics` in Prometheus's text format, through the OpenTelemetry metrics SDK and its Prometheus
 * serializer. Everything is read from the read model at scrape time, so every API process reports the
 * same deployment-wide figures and nothing is lost when one restarts; only the duration histogram is
 * fed, by the operations that finished since this process's last scrape.
 */
export function prometheusEndpoint(rt: Runtime) {
  // Pull-only: the SDK's reader is collected on each request and never starts a server of its own.
  const reader = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('stratus');
  const serializer = new PrometheusSerializer();

  const operations = meter.createObservableGauge('stratus_operations', { description: 'Operations in the read model, by kind and status' });
  const lag = meter.createObservableGauge('stratus_projection_lag_events', { description: 'Events in the log that a projection has not applied yet' });
  const capacity = meter.createObservableGauge('stratus_host_capacity', { description: 'A host\'s capacity, by resource (vcpus, memory_mb, disk_gb)' });
  const allocated = meter.createObservableGauge('stratus_host_allocated', { description: 'What instances hold of a host, by resource' });
  const hostUp = meter.createObservableGauge('stratus_host_up', { description: '1 when the host is UP, 0 when DOWN or in MAINTENANCE' });
  const vmMeters = meter.createObservableGauge('stratus_instance_meter', { description: 'The latest sample of each instance meter (cpu_util in %, memory.usage in MB, ...)' });
  const durations = meter.createHistogram('stratus_operation_duration_seconds', {
    description: 'From request to end, for operations that finished',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] },
  });

  // Appends are timed where they happen, so this is the appends of this process (all of them under `npm start`).
  const appendLatency = meter.createHistogram('stratus_eventstore_append_duration_seconds', {
    description: 'How long appends to the event store took in this process, by outcome (appended, duplicate, wrong_version, ...)',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] },
  });
  const stopTimingAppends = onAppendTiming((seconds, outcome) => appendLatency.record(seconds, { outcome }));

  meter.addBatchObservableCallback(
    async (result) => {
      const ops = await rt.db.query<{ kind: string; status: string; n: number }>('SELECT kind, status, count(*)::int AS n FROM rm_operations GROUP BY kind, status');
      for (const o of ops) result.observe(operations, o.n, { kind: o.kind, status: o.status });
      const hosts = await rt.db.query<Record<string, string | number>>('SELECT * FROM rm_hosts');
      for (const h of hosts) {
        const host = { host: String(h.name), host_id: String(h.id) };
        for (const r of ['vcpus', 'memory_mb', 'disk_gb']) {
          result.observe(capacity, Number(h[`capacity_${r}`]), { ...host, resource: r });
          result.observe(allocated, Number(h[`allocated_${r}`]), { ...host, resource: r });
        }
        result.observe(hostUp, h.state === 'UP' ? 1 : 0, host);
      }
      const checkpoints = await rt.db.query<{ name: string; checkpoint: string | null }>('SELECT name, checkpoint FROM projection_checkpoints');
      for (const name of projectionNames) {
        const stored = checkpoints.find((c) => c.name === name)?.checkpoint;
        const at = stored ? checkpointFromString(stored) : { transactionId: '0', position: '0' };
        const [row] = await rt.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM events WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
             AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())`,
          [at.transactionId, at.position],
        );
        result.observe(lag, row?.n ?? 0, { projection: name });
      }
      for (const s of await latestSamples(rt)) result.observe(vmMeters, s.value, { instance_id: s.resourceId, project_id: s.projectId, meter: s.meter });
    },
    [operations, lag, capacity, allocated, hostUp, vmMeters],
  );

  let finishedAfter = new Date(0);
  const recordFinished = async () => {
    const rows = await rt.db.query<{ kind: string; status: string; seconds: number; finished_at: Date }>(
      `SELECT kind, status, EXTRACT(EPOCH FROM finished_at - created_at)::float8 AS seconds, finished_at FROM rm_operations
        WHERE finished_at > $1 ORDER BY finished_at`,
      [finishedAfter],
    );
    for (const r of rows) durations.record(Math.max(0, r.seconds), { kind: r.kind, status: r.status });
    if (rows.length > 0) finishedAfter = rows.at(-1)!.finished_at;
  };

  /** An admin token or the metrics token; anyone else is refused (401 without a valid token, 403 with another). */
  const allowed = async (req: IncomingMessage): Promise<200 | 401 | 403> => {
    const token = bearerToken(req.headers.authorization);
    if (!token) return 401;
    if (rt.config.metricsToken && sameSecret(token, rt.config.metricsToken)) return 200;
    const caller = await authenticate(rt, token);
    if (!caller) return 401;
    return isAdmin(caller) ? 200 : 403;
  };

  return {
    async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
      try {
        const status = await allowed(req);
        if (status !== 200) {
          res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}) });
          res.end(status === 401 ? 'a valid bearer token is required\n' : 'an admin or metrics token is required\n');
          return;
        }
        await recordFinished();
        const { resourceMetrics, errors } = await reader.collect();
        if (errors.length > 0) log.warn({ errors }, 'some metrics could not be collected');
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(serializer.serialize(resourceMetrics));
      } catch (e) {
        log.error({ err: e }, 'GET /metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('internal error\n');
      }
    },
    shutdown: () => {
      stopTimingAppends();
      return provider.shutdown();
    },
  };
}
