import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Caller } from '../domain/identity.js';
import type { Operation } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, hostOf, instanceOf, lifecycleRuntime, settled, simHost } from './support/lifecycleStack.js';

describe.sequential('draining a host for maintenance, on real Temporal, PostgreSQL and sim agents over SSH', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let caller: Caller;
  let privateKey: string;
  let publicKey: string;
  let imageId: string;
  const flavors: Record<string, string> = {};
  const agents = new Map<string, AgentProcess>();

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'drain_e');
    rt = stack.rt;
    privateKey = stack.key.privateKey;
    publicKey = stack.key.publicKey;
    worker = await startWorker(rt);
    caller = adminCaller();
    for (const [name, vcpus, memoryMb, diskGb] of [['m1.tiny', 1, 512, 1], ['x1.huge', 1, 9000, 1]] as const) {
      flavors[name] = (await commands.createFlavor(rt, caller, { name, vcpus, memoryMb, diskGb })).flavor.id;
    }
    imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await Promise.all([...agents.values()].map((a) => a.stop()));
    await rt?.close();
  });

  const addHost = async (name: string, memoryMb: number) => {
    const { agent, host } = await simHost(rt, caller, publicKey, name, { vcpus: 8, memoryMb, diskGb: 100 });
    agents.set(host.id, agent);
    return host.id;
  };
  const vmsOn = async (hostId: string) => {
    const client = agents.get(hostId)!.client({ privateKey });
    try {
      return (await client.call('listVms', {})).vms;
    } finally {
      client.close();
    }
  };
  const boot = async (name: string, flavor = 'm1.tiny') => {
    const { operation, instance } = await commands.bootInstance(rt, caller, { name, flavorId: flavors[flavor]!, imageId });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    return instanceOf(rt, instance!.id);
  };
  const childrenOf = (op: Operation) => Promise.all((op.children ?? []).map((id) => settled(rt, id)));

  let drained: string;

  it('MAINTENANCE drains the host: six instances end RUNNING on other hosts through one MIGRATE child each, and the host holds none', async () => {
    drained = await addHost('drain-me', 8192);
    const instances = await Promise.all(Array.from({ length: 6 }, (_, i) => boot(`tenant-${i}`)));
    for (const i of instances) expect(i.hostId).toBe(drained);
    const others = [await addHost('target-1', 8192), await addHost('target-2', 8192)];

    const { host, operation } = await commands.setHostState(rt, caller, { id: drained, state: 'MAINTENANCE' });
    expect(host.state).toBe('MAINTENANCE');
    expect(operation).toMatchObject({ kind: 'DRAIN_HOST', resourceId: drained, status: 'PENDING' });
    const done = await settled(rt, operation!.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.steps.map((s) => [s.name, s.status])).toEqual([['listInstances', 'SUCCEEDED'], ['recordDrained', 'SUCCEEDED']]);
    const children = await childrenOf(done);
    expect(children.map((c) => [c.kind, c.status]).sort()).toEqual(Array.from({ length: 6 }, () => ['MIGRATE', 'SUCCEEDED']));
    expect(children.map((c) => c.resourceId).sort()).toEqual(instances.map((i) => i.id).sort());

    for (const i of instances) {
      const after = await instanceOf(rt, i.id);
      expect(after).toMatchObject({ state: 'RUNNING', task: null });
      expect(others).toContain(after.hostId);
    }
    expect((await hostOf(rt, drained)).claims).toEqual({});
    expect(await vmsOn(drained)).toEqual([]);
    expect((await Promise.all(others.map(vmsOn))).flat()).toHaveLength(6);
  });

  it('the scheduler places nothing on a host in MAINTENANCE, even the emptiest; setHostState(UP) ends maintenance', async () => {
    const placed = await boot('while-maintained');
    expect(placed.hostId).not.toBe(drained);
    const { host, operation } = await commands.setHostState(rt, caller, { id: drained, state: 'UP' });
    expect(host.state).toBe('UP');
    expect(operation).toBeUndefined();
    expect((await boot('after-maintenance')).hostId).toBe(drained);
  });

  it('an instance no other host has room for stays on the host, and the drain names it', async () => {
    const big = await addHost('big-host', 16384);
    const small = await boot('e-small');
    const huge = await boot('e-huge', 'x1.huge');
    expect([small.hostId, huge.hostId]).toEqual([big, big]);

    const { operation } = await commands.setHostState(rt, caller, { id: big, state: 'MAINTENANCE' });
    const done = await settled(rt, operation!.id);
    expect(done).toMatchObject({ status: 'FAILED', error: { code: 'NO_VALID_HOST', message: expect.stringContaining(huge.id) } });
    expect(done.error!.message).toMatch(/^1 of 2 instances stayed/);
    expect(done.error!.message).not.toContain(small.id);
    const children = await childrenOf(done);
    expect(children.map((c) => [c.resourceId, c.status]).sort()).toEqual([[huge.id, 'FAILED'], [small.id, 'SUCCEEDED']].sort());

    expect(await instanceOf(rt, huge.id)).toMatchObject({ state: 'RUNNING', task: null, hostId: big });
    expect((await instanceOf(rt, small.id)).hostId).not.toBe(big);
    expect(Object.keys((await hostOf(rt, big)).claims)).toEqual([huge.id]);
  });
});
