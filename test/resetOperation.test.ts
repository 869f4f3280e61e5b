import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { StratusError } from '../domain/errors.js';
import { hostStream, instanceStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { operationDecider, workflowIdOf, type Operation, type OperationCommand, type OperationDeciderState } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { readOperation } from '../schema/commands/operations.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { abandonSignal } from '../workflows/runbook.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, hostOf, instanceOf, lifecycleRuntime, setFaults, simHost } from './support/lifecycleStack.js';

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    if (e instanceof StratusError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

/** Polls the operation's stream until `done` holds; a held run never ends on its own within a test. */
async function operationWhen(rt: Runtime, id: string, done: (op: Operation) => boolean): Promise<Operation> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const op = await readOperation(rt, id);
    if (op && done(op)) return op;
    if (Date.now() > deadline) throw new Error(`operation ${id} did not get there: ${JSON.stringify(op)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('resetOperation: Temporal reset of a held failed run to just before its failed step', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let caller: Caller;
  let flavorId: string;
  let imageId: string;
  let hostId: string;

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'reset_operation');
    rt = stack.rt;
    // Long enough that no run here undoes its steps on its own: only a reset or the abandon signal moves it.
    rt.config.failureHoldMs = 30 * 60_000;
    worker = await startWorker(rt);
    caller = adminCaller();
    const h = await simHost(rt, caller, stack.key.publicKey, 'sim-reset');
    agent = h.agent;
    hostId = h.host.id;
    flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, caller, { name: 'cirros-0.6', format: 'qcow2', sizeBytes: 21_430_272 })).image.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await agent?.stop();
    await rt?.close();
  });

  /** The agent's own record of every mutating call it ran for this operation: its idempotency journal. */
  const agentCalls = async (operationId: string) =>
    (await readFile(join(agent.stateDir, 'idempotency.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { key: string; request: string; outcome: { result?: unknown; error?: unknown } })
      .filter((e) => e.key.startsWith(`${operationId}:`))
      .map((e) => `${e.request.split(':')[0]} ${'error' in e.outcome ? 'error' : 'ok'}`);

  it('a boot failed at startVm, reset once the fault is gone, runs on from startVm: schedule and createVm ran once in all, and the instance is RUNNING', async () => {
    await setFaults(agent, { failMethods: ['startVm'], failNamePattern: '^held' });
    const { operation, instance } = await commands.bootInstance(rt, caller, { name: 'held-1', flavorId, imageId });
    const failed = await operationWhen(rt, operation.id, (op) => op.status === 'FAILED');
    expect(failed.error?.code).toBe('HYPERVISOR_ERROR');
    // Held: nothing undone, the instance still belongs to the run.
    expect(failed.steps.map((s) => [s.name, s.status])).toEqual([
      ['schedule', 'SUCCEEDED'],
      ['allocateAddress', 'SUCCEEDED'],
      ['plugPort', 'SUCCEEDED'],
      ['createVm', 'SUCCEEDED'],
      ['startVm', 'FAILED'],
    ]);
    expect(await instanceOf(rt, instance!.id)).toMatchObject({ state: 'BUILDING', task: 'BOOT' });
    expect((await hostOf(rt, hostId)).claims[instance!.id]).toBeDefined();

    await setFaults(agent, {});
    const reset = await commands.resetOperation(rt, caller, { id: operation.id });
    expect(reset.operation.status).toBe('RUNNING');
    expect(reset.operation.steps.at(-1)).toMatchObject({ name: 'reset', status: 'SUCCEEDED' });

    const done = await operationWhen(rt, operation.id, (op) => op.status !== 'RUNNING');
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => [s.name, s.status])).toEqual([
      ['schedule', 'SUCCEEDED'],
      ['allocateAddress', 'SUCCEEDED'],
      ['plugPort', 'SUCCEEDED'],
      ['createVm', 'SUCCEEDED'],
      ['startVm', 'FAILED'],
      ['reset', 'SUCCEEDED'],
      ['startVm', 'SUCCEEDED'],
      ['recordRunning', 'SUCCEEDED'],
    ]);
    expect(done.runId).not.toBe(failed.runId);
    expect(await instanceOf(rt, instance!.id)).toMatchObject({ state: 'RUNNING', task: null });

    // Once in all: one port, one VM defined, one claim, one scheduling; startVm twice (the failure, then the run after the reset).
    expect(await agentCalls(operation.id)).toEqual(['plugPort ok', 'setGroupMembers ok', 'createVm ok', 'startVm error', 'startVm ok']);
    const instanceEvents = (await rt.store.readStream(instanceStream(instance!.id))).map((e) => e.type);
    expect(instanceEvents.filter((t) => t === 'InstanceScheduled')).toHaveLength(1);
    expect(instanceEvents).not.toContain('InstanceFailed');
    const claims = (await rt.store.readStream(hostStream(hostId))).filter((e) => e.type === 'HostCapacityClaimed' && (e.data as { instanceId: string }).instanceId === instance!.id);
    expect(claims).toHaveLength(1);
    // Temporal's side: the reset run kept the failed run's schedule and createVm instead of running them again.
    // The operation reads SUCCEEDED as soon as recordRunning appends; the run's last workflow task (which
    // records that local activity) completes just after, so wait for the run itself to end.
    const handle = rt.temporal.workflow.getHandle(workflowIdOf(operation.id));
    await handle.result();
    const history = await handle.fetchHistory();
    // Steps that only append events run as local activities, recorded as markers rather than scheduled tasks.
    const localActivity = (e: (typeof history.events & object)[number]) => {
      const a = e.markerRecordedEventAttributes;
      const data = a?.markerName === 'core_local_activity' ? a.details?.data?.payloads?.[0]?.data : undefined;
      return data ? (JSON.parse(Buffer.from(data).toString()) as { activity_type: string }).activity_type : undefined;
    };
    const ran = (history.events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? localActivity(e)).filter(Boolean);
    expect(ran).toEqual(['schedule', 'allocateFixedAddress', 'plugBootPort', 'createVm', 'startVm', 'recordRunning']);
  });

  it('a held run that is abandoned undoes its steps as before, and can no longer be reset', async () => {
    await setFaults(agent, { failMethods: ['startVm'], failNamePattern: '^held' });
    try {
      const { operation, instance } = await commands.bootInstance(rt, caller, { name: 'held-2', flavorId, imageId });
      await operationWhen(rt, operation.id, (op) => op.status === 'FAILED');
      const handle = rt.temporal.workflow.getHandle(workflowIdOf(operation.id));
      await handle.signal(abandonSignal);
      await expect(handle.result()).rejects.toThrow();
      const done = await readOperation(rt, operation.id);
      expect(done!.steps.map((s) => [s.name, s.status])).toEqual([
        ['schedule', 'SUCCEEDED'],
        ['allocateAddress', 'SUCCEEDED'],
        ['plugPort', 'SUCCEEDED'],
        ['createVm', 'SUCCEEDED'],
        ['startVm', 'FAILED'],
        ['destroyVm', 'SUCCEEDED'],
        ['unplugPort', 'SUCCEEDED'],
        ['releaseAddress', 'SUCCEEDED'],
        ['releaseClaim', 'SUCCEEDED'],
      ]);
      expect(await instanceOf(rt, instance!.id)).toMatchObject({ state: 'ERROR', task: null });
      expect((await hostOf(rt, hostId)).claims[instance!.id]).toBeUndefined();
      expect(await refusal(commands.resetOperation(rt, caller, { id: operation.id }))).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/use retryOperation/) });
    } finally {
      await setFaults(agent, {});
    }
  });

  it('refuses what cannot be reset and changes nothing: a SUCCEEDED operation, an unknown id, a caller who is not admin', async () => {
    const { operation } = await commands.bootInstance(rt, caller, { name: 'fine-1', flavorId, imageId });
    const ok = await operationWhen(rt, operation.id, (op) => op.status === 'SUCCEEDED');
    expect(await refusal(commands.resetOperation(rt, caller, { id: operation.id }))).toMatchObject({ code: 'CONFLICT' });
    expect(await refusal(commands.resetOperation(rt, caller, { id: '00000000-0000-4000-8000-00000000abcd' }))).toMatchObject({ code: 'NOT_FOUND' });
    const member: Caller = { ...caller, role: 'MEMBER' };
    expect(await refusal(commands.resetOperation(rt, member, { id: operation.id }))).toMatchObject({ code: 'FORBIDDEN' });
    expect((await readOperation(rt, operation.id))!.version).toBe(ok.version);
  });
});

describe('the operation decider on reset', () => {
  const at = '2026-01-01T00:00:00.000Z';
  const fold = (commands: OperationCommand[], state: OperationDeciderState = null) =>
    commands.reduce((s, c) => operationDecider.decide(c, s).reduce(operationDecider.evolve, s), state);
  const requested = () =>
    fold([{ type: 'request', data: { operationId: '00000000-0000-4000-8000-000000000001', kind: 'BOOT', resourceId: '00000000-0000-4000-8000-000000000002', projectId: '00000000-0000-4000-8000-000000000003', actor: { tokenId: 't', projectId: '00000000-0000-4000-8000-000000000003', role: 'ADMIN' }, at } }]);

  it('reopens only a FAILED operation, marks the reset among its steps, and counts the reset run as an attempt', () => {
    const running = fold([{ type: 'start', data: { runId: 'r1', at } }], requested());
    expect(() => operationDecider.decide({ type: 'reset', data: { fromStep: 'startVm', resetEventId: 9, at } }, running)).toThrow(/cannot reset/);
    const failed = fold([{ type: 'startStep', data: { name: 'startVm', at } }, { type: 'finishStep', data: { name: 'startVm', status: 'FAILED', error: { code: 'HYPERVISOR_ERROR', message: 'no' }, at } }, { type: 'fail', data: { code: 'HYPERVISOR_ERROR', message: 'no', at } }], running);
    const reset = fold([{ type: 'reset', data: { fromStep: 'startVm', resetEventId: 9, at } }], failed)!;
    expect(reset).toMatchObject({ status: 'RUNNING', error: null, finishedAt: null, runId: 'r1', attempts: 1 });
    expect(reset.steps.map((s) => [s.name, s.status])).toEqual([['startVm', 'FAILED'], ['reset', 'SUCCEEDED']]);
    expect(fold([{ type: 'start', data: { runId: 'r2', at } }], reset)).toMatchObject({ runId: 'r2', attempts: 2 });
  });
});
