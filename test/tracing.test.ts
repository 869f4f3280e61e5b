import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceStream, operationStream } from '../domain/events.js';
import { startTracing } from '../server/telemetry.js';
import { startApiStack, type ApiStack } from './support/apiStack.js';
import { startOtlpReceiver, type ReceivedSpan } from './support/otlpReceiver.js';

/**
 * One boot, one trace: the GraphQL request, the workflow start and run, each activity, the host
 * agent's handling and the driver's work, exported over OTLP/HTTP (this process and the agent's) to
 * a receiver the test runs, with every parent link inside the trace.
 */
describe('tracing: one OpenTelemetry trace from the mutation to the hypervisor', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let stack: ApiStack;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    // Before anything starts: the API, the worker and the agent child process read these at start.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
    stack = await startApiStack('tracing');
  });
  afterAll(async () => {
    await stack?.stop();
    await (await startTracing('stratus'))?.shutdown();
    await receiver?.close();
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  });

  it('a boot is one trace with the GraphQL, workflow, activity, agent and driver spans, parents intact, named by the operation and its events', async () => {
    const booted = await stack.admin(`mutation Boot($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id traceId } instance { id } } }`, {
      i: { name: 'traced-1', flavorId: stack.flavorId, imageId: stack.imageId },
    });
    const { id: operationId, traceId } = booted.bootInstance.operation as { id: string; traceId: string };
    const instanceId = booted.bootInstance.instance.id as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);

    const deadline = Date.now() + 60_000;
    while ((await stack.admin(`query($id: ID!) { operation(id: $id) { status } }`, { id: operationId })).operation?.status !== 'SUCCEEDED') {
      if (Date.now() > deadline) throw new Error('the boot did not succeed');
      await new Promise((r) => setTimeout(r, 100));
    }
    await (await startTracing('stratus'))!.flush();

    const expected = [
      'graphql mutation Boot',
      'StartWorkflow:bootInstance',
      'RunWorkflow:bootInstance',
      // schedule is a local activity; the host's steps and recordRunning run as one (setUpOnHost).
      ...['schedule', 'setUpOnHost'].flatMap((a) => [`StartActivity:${a}`, `RunActivity:${a}`]),
      ...['schedule', 'plugPort', 'createVm', 'startVm', 'recordRunning'].map((step) => `step ${step}`),
      'hostagent createVm',
      'driver createVm',
      'hostagent startVm',
      'driver startVm',
    ];
    const ofTrace = (): ReceivedSpan[] => receiver.spans.filter((s) => s.traceId === traceId);
    // The agent's batch goes out on its own schedule; wait for it rather than guess a time.
    while (!expected.every((name) => ofTrace().some((s) => s.name === name))) {
      if (Date.now() > deadline) throw new Error(`missing spans: ${expected.filter((n) => !ofTrace().some((s) => s.name === n)).join(', ')}\nhave: ${ofTrace().map((s) => s.name).join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const spans = ofTrace();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (name: string) => byId.get(spans.find((s) => s.name === name)!.parentSpanId)?.name;

    // One root, the request; every other span's parent is in the same trace.
    expect(spans.filter((s) => !s.parentSpanId).map((s) => s.name)).toEqual(['graphql mutation Boot']);
    for (const s of spans.filter((s) => s.parentSpanId)) expect(byId.has(s.parentSpanId), `${s.name}'s parent`).toBe(true);
    expect(parentOf('StartWorkflow:bootInstance')).toBe('graphql mutation Boot');
    expect(parentOf('RunWorkflow:bootInstance')).toBe('StartWorkflow:bootInstance');
    expect(parentOf('RunActivity:setUpOnHost')).toBe('StartActivity:setUpOnHost');
    for (const step of ['plugPort', 'createVm', 'startVm', 'recordRunning']) expect(parentOf(`step ${step}`)).toBe('RunActivity:setUpOnHost');
    expect(parentOf('step schedule')).toBe('RunActivity:schedule');
    expect(parentOf('hostagent createVm')).toBe('step createVm');
    expect(parentOf('hostagent startVm')).toBe('step startVm');
    expect(parentOf('driver createVm')).toBe('hostagent createVm');
    // The agent's spans come from the agent process, the rest from the controller.
    expect(spans.find((s) => s.name === 'hostagent createVm')!.service).toBe('stratus-hostagent');
    expect(spans.find((s) => s.name === 'RunActivity:setUpOnHost')!.service).toBe('stratus');

    // The event log names the trace: the command's events and every activity's.
    for (const stream of [instanceStream(instanceId), operationStream(operationId)]) {
      const events = await stack.rt.store.readStream(stream);
      expect(events.length).toBeGreaterThan(2);
      for (const e of events) expect((e.metadata as { traceparent?: string }).traceparent, `${stream} ${e.type}`).toContain(`-${traceId}-`);
    }
  });
});
