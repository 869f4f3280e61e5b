import { projectionNames } from '../projections/registry.js';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { gql } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { domainWriter, testRuntime } from './support/projectionFixtures.js';
import { parsePrometheusText } from './support/prometheusText.js';

const ADMIN = `admin-${randomUUID()}`;
const METRICS_TOKEN = `metrics-${randomUUID()}`;

describe('GET /metrics: Prometheus text from the OpenTelemetry metrics SDK', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let api: { url: string; close(): Promise<void> };
  let metricsUrl: string;
  let member: string;

  const admin = async (query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(api.url, ADMIN, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };
  const scrape = (token?: string) => fetch(metricsUrl, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  beforeAll(async () => {
    rt = await testRuntime('metering_metrics', { adminToken: ADMIN });
    rt.config.metricsToken = METRICS_TOKEN;
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
    api = await startApi(rt, { port: 0 });
    metricsUrl = api.url.replace('/graphql', '/metrics');
    const projectId = await domainWriter(rt).project();
    member = await domainWriter(rt).token(projectId, 'MEMBER');
    await waitForProjections(rt);
  });
  afterAll(async () => {
    await api?.close();
    await worker?.shutdown();
    await agent?.stop();
    await runner?.stop();
    await rt?.close();
  });

  it('the strict reader itself refuses what the format forbids', () => {
    expect(() => parsePrometheusText('x 1\n')).toThrow(/no TYPE/);
    expect(() => parsePrometheusText('# TYPE x gauge\nx{a="\\q"} 1\n')).toThrow(/bad escape/);
    expect(() => parsePrometheusText('# TYPE x gauge\nx 1\nx 2\n')).toThrow(/twice/);
    expect(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/cumulative/);
    expect(parsePrometheusText('# TYPE x gauge\nx{a="b\\"c"} 1.5e3\n').get('x')!.samples).toEqual([{ name: 'x', labels: { a: 'b"c' }, value: 1500 }]);
  });

  it('refuses callers without the admin or metrics token', async () => {
    expect((await scrape()).status).toBe(401);
    expect((await scrape('not-a-token')).status).toBe(401);
    expect((await scrape(member)).status).toBe(403);
    expect((await scrape(METRICS_TOKEN)).status).toBe(200);
  });

  it('parses strictly and shows the operations just run, their durations, projection lag and host capacity', async () => {
    await admin(`mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
      i: { name: 'sim-metrics', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
    });
    const flavorId = (await admin(`mutation { createFlavor(input: {name: "m.metrics", vcpus: 2, memoryMb: 256, diskGb: 1}) { flavor { id } } }`)).createFlavor.flavor.id;
    const imageId = (await admin(`mutation { registerImage(input: {name: "cirros", format: "qcow2", sizeBytes: 1024}) { image { id } } }`)).registerImage.image.id;
    const boot = await admin(`mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id workflowId } } }`, { i: { name: 'm-1', flavorId, imageId } });
    await rt.temporal.workflow.getHandle(boot.bootInstance.operation.workflowId).result();
    await waitForProjections(rt);

    const res = await scrape(ADMIN);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const families = parsePrometheusText(text);

    const ops = families.get('stratus_operations')!;
    expect(ops.type).toBe('gauge');
    expect(ops.samples.find((x) => x.labels.kind === 'BOOT' && x.labels.status === 'SUCCEEDED')?.value).toBe(1);

    const durations = families.get('stratus_operation_duration_seconds')!;
    expect(durations.type).toBe('histogram');
    const count = durations.samples.find((s) => s.name === 'stratus_operation_duration_seconds_count' && s.labels.kind === 'BOOT');
    expect(count?.value).toBe(1);

    const lag = families.get('stratus_projection_lag_events')!;
    // One lag gauge per projection there is.
    expect(lag.samples.map((s) => s.labels.projection).sort()).toEqual([...projectionNames].sort());
    expect(lag.samples.every((s) => Number.isInteger(s.value) && s.value >= 0)).toBe(true);

    const cap = families.get('stratus_host_capacity')!.samples.find((s) => s.labels.host === 'sim-metrics' && s.labels.resource === 'vcpus');
    const alloc = families.get('stratus_host_allocated')!.samples.find((s) => s.labels.host === 'sim-metrics' && s.labels.resource === 'vcpus');
    expect(cap!.value).toBeGreaterThanOrEqual(2);
    expect(alloc!.value).toBe(2);

    // Every append this process made is timed, by outcome.
    const appends = families.get('stratus_eventstore_append_duration_seconds')!;
    expect(appends.type).toBe('histogram');
    const appended = (f: typeof families, outcome: string) =>
      f.get('stratus_eventstore_append_duration_seconds')?.samples.find((s) => s.name.endsWith('_count') && s.labels.outcome === outcome)?.value ?? 0;
    // At least the boot's own events were appended here (the worker runs in this process).
    expect(appended(families, 'appended')).toBeGreaterThanOrEqual(3);
    expect(appends.samples.find((s) => s.name.endsWith('_sum') && s.labels.outcome === 'appended')!.value).toBeGreaterThan(0);
    const stream = `project-${randomUUID()}`;
    const e = () => ({ id: randomUUID(), type: 'ProjectCreated' as const, data: { id: stream.slice(8), name: `p-${randomUUID().slice(0, 8)}`, createdAt: new Date().toISOString() }, metadata: { actor: 'test' } });
    const first = e();
    await rt.store.append(stream, [first], { expectedVersion: 'noStream' });
    await rt.store.append(stream, [first], { expectedVersion: 'noStream' });
    await expect(rt.store.append(stream, [e()], { expectedVersion: 'noStream' })).rejects.toThrow();
    const timed = parsePrometheusText(await (await scrape(ADMIN)).text());
    expect(appended(timed, 'appended')).toBeGreaterThanOrEqual(appended(families, 'appended') + 1);
    expect(appended(timed, 'duplicate')).toBeGreaterThanOrEqual(appended(families, 'duplicate') + 1);
    expect(appended(timed, 'wrong_version')).toBeGreaterThanOrEqual(appended(families, 'wrong_version') + 1);

    // The histogram counts each finished operation once, however often it is scraped.
    const again = parsePrometheusText(await (await scrape(METRICS_TOKEN)).text());
    expect(again.get('stratus_operation_duration_seconds')!.samples.find((s) => s.name.endsWith('_count') && s.labels.kind === 'BOOT')?.value).toBe(1);
  });

  it('projection lag counts the events a projection has not applied yet, and falls to 0 once it has', async () => {
    const lagOf = async () => {
      const families = parsePrometheusText(await (await scrape(METRICS_TOKEN)).text());
      return new Map(families.get('stratus_projection_lag_events')!.samples.map((s) => [s.labels.projection!, s.value]));
    };
    await waitForProjections(rt);
    await runner.stop();
    const stream = `project-${randomUUID()}`;
    for (let i = 0; i < 3; i++) {
      const id = randomUUID();
      await rt.store.append(stream, [{ id, type: 'ProjectCreated', data: { id: stream.slice(8), name: `lag-${id.slice(0, 8)}`, createdAt: new Date().toISOString() }, metadata: { actor: 'test' } }], {
        expectedVersion: i === 0 ? 'noStream' : i,
      });
    }
    const behind = await lagOf();
    expect([...behind.keys()].sort()).toEqual([...projectionNames].sort());
    for (const [name, n] of behind) expect(n, name).toBeGreaterThanOrEqual(3);
    runner = await startProjections(rt);
    await waitForProjections(rt);
    for (const [name, n] of await lagOf()) expect(n, name).toBe(0);
  });
});
