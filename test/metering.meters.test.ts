import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../activities/agentCalls.js';
import { downsampleMeters } from '../activities/meterSamples.js';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import { keepMeterPollers, meterPollerId } from '../server/meteringClock.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { gql } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { domainWriter, testRuntime } from './support/projectionFixtures.js';
import { parsePrometheusText } from './support/prometheusText.js';

const ADMIN = `admin-${randomUUID()}`;
const METERS = `query($id: ID!, $m: String!, $from: DateTime!, $to: DateTime!) { meters(resourceId: $id, meter: $m, from: $from, to: $to) { meter resourceId timestamp value unit } }`;

describe('meters: a durable pollster per host stores samples; meters() reads them, raw for a day and hourly after', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let api: { url: string; close(): Promise<void> };
  let stopPollers: () => Promise<void>;
  let hostId: string;
  let instanceId: string;
  const tokens = { a: '', b: '' };
  const window = () => ({ from: new Date(Date.now() - 3 * 86_400_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() });

  const admin = async (query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(api.url, ADMIN, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };

  beforeAll(async () => {
    rt = await testRuntime('metering_meters', { adminToken: ADMIN });
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
    api = await startApi(rt, { port: 0 });
    const write = domainWriter(rt);
    const projectA = await write.project();
    tokens.a = await write.token(projectA, 'MEMBER');
    tokens.b = await write.token(await write.project(), 'MEMBER');
    await waitForProjections(rt);
    // Pollsters first: the host registered next gets one through its change notification.
    stopPollers = await keepMeterPollers(rt, 300);
    hostId = (await admin(`mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
      i: { name: 'sim-meters', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
    })).registerHost.host.id;
    const flavorId = (await admin(`mutation { createFlavor(input: {name: "m.meters", vcpus: 2, memoryMb: 512, diskGb: 1}) { flavor { id } } }`)).createFlavor.flavor.id;
    const imageId = (await admin(`mutation { registerImage(input: {name: "cirros", format: "qcow2", sizeBytes: 1024}) { image { id } } }`)).registerImage.image.id;
    const boot = await gql(api.url, tokens.a, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { workflowId } instance { id } } }`, {
      i: { name: 'metered', flavorId, imageId },
    });
    instanceId = boot.data!.bootInstance.instance.id;
    await rt.temporal.workflow.getHandle(boot.data!.bootInstance.operation.workflowId).result();
    await waitForProjections(rt);
  });
  afterAll(async () => {
    await stopPollers?.();
    if (hostId) await rt.temporal.workflow.getHandle(meterPollerId(hostId)).terminate().catch(() => {});
    await api?.close();
    await worker?.shutdown();
    await agent?.stop();
    await runner?.stop();
    await rt?.close();
  });

  it("the host's pollster samples the instance: cpu in ns, memory, disk, and cpu_util derived from cpu time", async () => {
    const read = async (meter: string, token = tokens.a) => (await gql(api.url, token, METERS, { id: instanceId, m: meter, ...window() })).data!.meters as { value: number; unit: string; timestamp: string }[];
    await expect.poll(async () => (await read('cpu_util')).length, { timeout: 60_000, interval: 200 }).toBeGreaterThanOrEqual(2);
    const util = await read('cpu_util');
    // The sim burns a steady 5% of its vCPUs.
    for (const s of util) expect(s.value).toBeCloseTo(5, 3);
    expect(util[0]!.unit).toBe('%');
    const cpu = await read('cpu');
    expect(cpu[0]!.unit).toBe('ns');
    expect(cpu.at(-1)!.value).toBeGreaterThan(cpu[0]!.value);
    expect((await read('memory.usage'))[0]).toMatchObject({ value: 256, unit: 'MB' });
    // Disk counters, cumulative: the sim reads 4 and writes 2 bytes per ms of the VM's life.
    const [reads, writes] = await Promise.all([read('disk.read.bytes'), read('disk.write.bytes')]);
    expect([reads[0]!.unit, writes[0]!.unit]).toEqual(['B', 'B']);
    expect(writes.at(-1)!.value).toBeGreaterThan(writes[0]!.value);
    for (const w of writes) {
      const r = reads.find((x) => x.timestamp === w.timestamp);
      if (r) expect(r.value).toBe(2 * w.value);
    }
    expect(writes.filter((w) => reads.some((r) => r.timestamp === w.timestamp)).length).toBeGreaterThan(0);
    expect(cpu.map((s) => s.timestamp)).toEqual([...cpu.map((s) => s.timestamp)].sort());
  });

  it('the sim reports network counters for the port the boot plugged: bytes and packets in and out, cumulative', async () => {
    const read = async (meter: string) => (await gql(api.url, tokens.a, METERS, { id: instanceId, m: meter, ...window() })).data!.meters as { value: number; unit: string; timestamp: string }[];
    expect((await callAgent(rt, hostId, 'listPorts', {})).ports.length).toBe(1);
    await expect.poll(async () => (await read('network.outgoing.packets')).length, { timeout: 60_000, interval: 200 }).toBeGreaterThanOrEqual(2);
    // A reading's samples are stored in one statement, so every reading seen in one meter is in the others.
    const outPackets = await read('network.outgoing.packets');
    const [incoming, outgoing, inPackets] = await Promise.all([read('network.incoming.bytes'), read('network.outgoing.bytes'), read('network.incoming.packets')]);
    expect([incoming[0]!.unit, outgoing[0]!.unit, inPackets[0]!.unit, outPackets[0]!.unit]).toEqual(['B', 'B', 'packet', 'packet']);
    expect(incoming.at(-1)!.value).toBeGreaterThan(incoming[0]!.value);
    // Each reading's counters belong together: the sim sends 2 kB/s in and 1 kB/s out, in 500-byte packets.
    const at = (samples: { timestamp: string; value: number }[], timestamp: string) => samples.find((s) => s.timestamp === timestamp)!.value;
    for (const s of outPackets) {
      const out = at(outgoing, s.timestamp);
      expect(at(incoming, s.timestamp)).toBe(2 * out);
      expect(s.value).toBe(Math.floor(out / 500));
      expect(at(inPackets, s.timestamp)).toBe(Math.floor((2 * out) / 500));
    }
  });

  it("another project's instance has no samples for a member, exactly like one that does not exist; a bad meter is BAD_USER_INPUT", async () => {
    const asB = await gql(api.url, tokens.b, METERS, { id: instanceId, m: 'cpu', ...window() });
    expect(asB.data!.meters).toEqual([]);
    expect((await gql(api.url, tokens.b, METERS, { id: randomUUID(), m: 'cpu', ...window() })).data!.meters).toEqual([]);
    expect((await gql(api.url, ADMIN, METERS, { id: instanceId, m: 'cpu', ...window() })).data!.meters.length).toBeGreaterThan(0);
    const bad = await gql(api.url, tokens.a, METERS, { id: instanceId, m: 'cpu.bogus', ...window() });
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('samples older than a day become one hourly average each, and meters() then reads the average', async () => {
    const [{ project_id: projectId }] = (await rt.db.query<{ project_id: string }>('SELECT project_id FROM rm_instances WHERE id = $1', [instanceId])) as [{ project_id: string }];
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 86_400_000);
    for (const [minute, value] of [[5, 10], [20, 20], [50, 60]] as const) {
      await rt.db.query(`INSERT INTO meter_samples (resource_id, project_id, meter, at, value, unit) VALUES ($1, $2, 'cpu_util', $3, $4, '%')`, [
        instanceId, projectId, new Date(hour.getTime() + minute * 60_000), value,
      ]);
    }
    await downsampleMeters(rt.db, new Date(Date.now() - 86_400_000));
    const [left] = await rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM meter_samples WHERE at < $1', [new Date(Date.now() - 86_400_000)]);
    expect(left!.n).toBe(0);
    const old = (await gql(api.url, tokens.a, METERS, { id: instanceId, m: 'cpu_util', from: hour.toISOString(), to: new Date(hour.getTime() + 3_600_000).toISOString() })).data!.meters;
    expect(old).toEqual([{ meter: 'cpu_util', resourceId: instanceId, timestamp: hour.toISOString(), value: 30, unit: '%' }]);
    // A late sample of the same hour merges into its average, weighted by count.
    await rt.db.query(`INSERT INTO meter_samples (resource_id, project_id, meter, at, value, unit) VALUES ($1, $2, 'cpu_util', $3, 70, '%')`, [instanceId, projectId, new Date(hour.getTime() + 55 * 60_000)]);
    await downsampleMeters(rt.db, new Date(Date.now() - 86_400_000));
    const [avg] = await rt.db.query<{ value: number; samples: number }>(`SELECT value, samples FROM meter_samples_hourly WHERE resource_id = $1 AND meter = 'cpu_util' AND hour = $2`, [instanceId, hour]);
    expect(avg).toEqual({ value: 40, samples: 4 });
  });

  it('/metrics shows the latest meters of each instance', async () => {
    const families = parsePrometheusText(await (await fetch(api.url.replace('/graphql', '/metrics'), { headers: { authorization: `Bearer ${ADMIN}` } })).text());
    const util = families.get('stratus_instance_meter')!.samples.find((s) => s.labels.instance_id === instanceId && s.labels.meter === 'cpu_util');
    expect(util!.value).toBeCloseTo(5, 3);
  });
});
