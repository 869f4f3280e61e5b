import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFolded } from '../activities/events.js';
import { ipToNumber, parseSubnet, type Subnet } from '../domain/cidr.js';
import { networkStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { defaultNetworkId } from '../domain/networkIndex.js';
import { networkDecider, type Network } from '../domain/network.js';
import { CreateNetworkInput } from '../domain/networkInputs.js';
import { parseInput } from '../schema/errors.js';
import * as commands from '../schema/commands/index.js';
import { ConfigError, loadConfig } from '../server/config.js';
import { createRuntime, type Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, instanceOf, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

const member = (projectId = randomUUID()): Caller => ({ tokenId: `member-${projectId}`, projectId, role: 'MEMBER' });

/** A refusal's code, or 'none' when the call went through. */
const codeOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'none',
    (e: unknown) => (e as { code?: string }).code ?? String(e),
  );

describe('IPAM and networks on real Temporal, PostgreSQL and a sim host', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let admin: Caller;
  let agent: AgentProcess;
  let flavorId: string;
  let imageId: string;

  const networkOf = async (id: string): Promise<Network> => (await readFolded(rt, networkStream(id), networkDecider)).state!;
  const streamEvents = (id: string) => rt.store.readStream(networkStream(id));
  const allEvents = async () => Number((await rt.db.query<{ n: string }>('SELECT count(*)::text AS n FROM events'))[0]!.n);

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'network_ipam');
    rt = stack.rt;
    worker = await startWorker(rt);
    admin = adminCaller();
    ({ agent } = await simHost(rt, admin, stack.key.publicKey, 'net-sim-1'));
    flavorId = (await commands.createFlavor(rt, admin, { name: 'n1.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, admin, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await agent?.stop();
    await rt?.close();
  });

  it('200 concurrent allocateIp on an external /24 from 4 projects: 200 distinct host addresses, exactly 200 allocation events', async () => {
    const { network } = await commands.createNetwork(rt, admin, { name: 'public', cidr: '203.0.113.0/24', external: true });
    const projects = Array.from({ length: 4 }, () => member());
    const started = await Promise.all(
      Array.from({ length: 200 }, (_, i) => commands.allocateIp(rt, projects[i % 4]!, { networkId: network.id, kind: 'FLOATING' })),
    );
    const operations = await Promise.all(started.map((s) => settled(rt, s.operation.id)));
    expect(operations.map((o) => o.status)).toEqual(Array(200).fill('SUCCEEDED'));

    const after = await networkOf(network.id);
    const held = Object.values(after.addresses);
    expect(held).toHaveLength(200);
    expect(new Set(held.map((a) => a.address)).size).toBe(200);
    const subnet = parseSubnet(network.cidr) as Subnet;
    for (const a of held) {
      const n = ipToNumber(a.address);
      expect(n).toBeGreaterThan(subnet.base);
      expect(n).toBeLessThan(subnet.base + subnet.size - 1);
      expect(a.address).not.toBe(network.gateway);
    }
    // Each address is held by the project that asked for it, under the operation's resource id.
    for (const [i, s] of started.entries()) expect(after.addresses[s.operation.resourceId]?.projectId).toBe(projects[i % 4]!.projectId);
    const allocations = (await streamEvents(network.id)).filter((e) => e.type === 'AddressAllocated');
    expect(allocations).toHaveLength(200);

    // The allocations folded the stream from snapshots; a snapshot is only a cache of the fold: the
    // state read through one equals the plain fold of every event, and so does a read after dropping them.
    const [snapshot] = await rt.db.query<{ version: number }>("SELECT version FROM stream_snapshots WHERE stream_id = $1 AND fold = 'network/1'", [
      networkStream(network.id),
    ]);
    expect(snapshot?.version).toBeGreaterThan(100);
    const events = await streamEvents(network.id);
    const plain = events.reduce((s, e) => networkDecider.evolve(s, { type: e.type, data: e.data } as never), null as Network | null);
    expect(after).toEqual(plain);
    // In the same order too: a host is told an instance's ports in the order the fold lists them.
    expect(Object.keys(after.addresses)).toEqual(Object.keys(plain!.addresses));
    await rt.db.query('DELETE FROM stream_snapshots WHERE stream_id = $1', [networkStream(network.id)]);
    expect(await networkOf(network.id)).toEqual(plain);
  });

  it('on an exhausted /28 the extra allocations fail with NO_FREE_ADDRESS and change nothing', async () => {
    const caller = member();
    const { network } = await commands.createNetwork(rt, caller, { name: 'tiny', cidr: '192.168.7.0/28', external: false });
    const started = await Promise.all(Array.from({ length: 20 }, () => commands.allocateIp(rt, caller, { networkId: network.id, kind: 'FIXED' })));
    const operations = await Promise.all(started.map((s) => settled(rt, s.operation.id)));
    const succeeded = operations.filter((o) => o.status === 'SUCCEEDED');
    const failed = operations.filter((o) => o.status === 'FAILED');
    // 16 addresses less network, broadcast and gateway.
    expect(succeeded).toHaveLength(13);
    expect(failed).toHaveLength(7);
    for (const op of failed) expect(op.error?.code).toBe('NO_FREE_ADDRESS');
    // The failures wrote nothing on the network: its creation and the 13 winners' allocations, no more.
    const afterBatch = await streamEvents(network.id);
    expect(afterBatch.map((e) => e.type)).toEqual(['NetworkCreated', ...Array(13).fill('AddressAllocated')]);
    expect(new Set(afterBatch.slice(1).map((e) => (e.data as { address: string }).address)).size).toBe(13);

    const versionBefore = (await streamEvents(network.id)).length;
    const one = await commands.allocateIp(rt, caller, { networkId: network.id, kind: 'FIXED' });
    expect(await settled(rt, one.operation.id)).toMatchObject({ status: 'FAILED', error: { code: 'NO_FREE_ADDRESS' } });
    expect((await streamEvents(network.id)).length).toBe(versionBefore);
    expect(Object.keys((await networkOf(network.id)).addresses)).toHaveLength(13);
  });

  it('a released address comes back only once every fresh one is gone', async () => {
    const caller = member();
    const { network } = await commands.createNetwork(rt, caller, { name: 'reuse', cidr: '192.168.8.0/29', external: false });
    const first = await commands.allocateIp(rt, caller, { networkId: network.id, kind: 'FIXED' });
    await settled(rt, first.operation.id);
    const firstAddress = (await networkOf(network.id)).addresses[first.operation.resourceId]!.address;
    expect(firstAddress).toBe('192.168.8.2');
    const release = await commands.releaseIp(rt, caller, { address: firstAddress });
    expect(await settled(rt, release.operation.id)).toMatchObject({ status: 'SUCCEEDED' });
    const taken: string[] = [];
    // A /29 has 5 host addresses besides the gateway: .2 .. .6; .2 is reused last.
    for (let i = 0; i < 5; i++) {
      const s = await commands.allocateIp(rt, caller, { networkId: network.id, kind: 'FIXED' });
      await settled(rt, s.operation.id);
      taken.push((await networkOf(network.id)).addresses[s.operation.resourceId]!.address);
    }
    expect(taken).toEqual(['192.168.8.3', '192.168.8.4', '192.168.8.5', '192.168.8.6', '192.168.8.2']);
  });

  it('bad network input gets BAD_USER_INPUT and writes nothing', async () => {
    const caller = member();
    await commands.createNetwork(rt, caller, { name: 'base', cidr: '172.16.0.0/24', external: false });
    const before = await allEvents();
    const parse = (input: Record<string, unknown>) => codeOf(Promise.resolve().then(() => parseInput(CreateNetworkInput, input)));
    expect(await parse({ name: 'x', cidr: 'banana' })).toBe('BAD_USER_INPUT');
    expect(await parse({ name: 'x', cidr: '10.0.0.0/33' })).toBe('BAD_USER_INPUT');
    expect(await parse({ name: 'x', cidr: '10.0.0.5/24' })).toBe('BAD_USER_INPUT');
    expect(await parse({ name: 'x', cidr: '10.0.0.0/15' })).toBe('BAD_USER_INPUT');
    expect(await parse({ name: 'x', cidr: '10.1.0.0/24', gateway: '10.2.0.1' })).toBe('BAD_USER_INPUT');
    expect(await parse({ name: 'x', cidr: '10.1.0.0/24', gateway: '10.1.0.255' })).toBe('BAD_USER_INPUT');
    expect(await parse({ name: 'x', cidr: '10.0.0.0/16' })).toBe('none');
    expect(await codeOf(commands.createNetwork(rt, caller, { name: 'clash', cidr: '172.16.0.128/25', external: false }))).toBe('BAD_USER_INPUT');
    expect(await codeOf(commands.createNetwork(rt, caller, { name: 'wide', cidr: '172.16.0.0/16', external: false }))).toBe('BAD_USER_INPUT');
    expect(await codeOf(commands.createNetwork(rt, caller, { name: 'pub', cidr: '198.51.100.0/24', external: true }))).toBe('FORBIDDEN');
    expect(await allEvents()).toBe(before);
    // Overlap is per project: another project may use the same subnet.
    expect(await codeOf(commands.createNetwork(rt, member(), { name: 'same', cidr: '172.16.0.0/24', external: false }))).toBe('none');
  });

  it('concurrent creations in one project never land two overlapping networks', async () => {
    const caller = member();
    // Every pair of these overlaps: exactly one may land.
    const results = await Promise.all(
      ['10.9.0.0/24', '10.9.0.0/25', '10.9.0.0/26', '10.9.0.0/16'].map((cidr, i) => codeOf(commands.createNetwork(rt, caller, { name: `race-${i}`, cidr, external: false }))),
    );
    expect(results.filter((r) => r === 'none')).toHaveLength(1);
    expect(results.filter((r) => r === 'BAD_USER_INPUT')).toHaveLength(3);
  });

  it("another project's network and addresses do not exist for the caller", async () => {
    const a = member();
    const b = member();
    const { network } = await commands.createNetwork(rt, a, { name: 'private', cidr: '10.20.0.0/24', external: false });
    const s = await commands.allocateIp(rt, a, { networkId: network.id, kind: 'FIXED' });
    await settled(rt, s.operation.id);
    const address = (await networkOf(network.id)).addresses[s.operation.resourceId]!.address;
    const before = await allEvents();
    expect(await codeOf(commands.allocateIp(rt, b, { networkId: network.id, kind: 'FIXED' }))).toBe('NOT_FOUND');
    expect(await codeOf(commands.releaseIp(rt, b, { address }))).toBe('NOT_FOUND');
    expect(await codeOf(commands.releaseIp(rt, b, { address, networkId: network.id }))).toBe('NOT_FOUND');
    expect(await codeOf(commands.deleteNetwork(rt, b, { id: network.id }))).toBe('NOT_FOUND');
    expect(await codeOf(commands.allocateIp(rt, a, { networkId: network.id, kind: 'FLOATING' }))).toBe('BAD_USER_INPUT');
    expect(await allEvents()).toBe(before);
  });

  it('deleteNetwork is refused with CONFLICT while an address is in use, and goes through once it is released', async () => {
    const caller = member();
    const { network } = await commands.createNetwork(rt, caller, { name: 'short-lived', cidr: '10.30.0.0/24', external: false });
    const s = await commands.allocateIp(rt, caller, { networkId: network.id, kind: 'FIXED' });
    await settled(rt, s.operation.id);
    const address = (await networkOf(network.id)).addresses[s.operation.resourceId]!.address;
    expect(await codeOf(commands.deleteNetwork(rt, caller, { id: network.id }))).toBe('CONFLICT');
    expect((await networkOf(network.id)).deleted).toBe(false);
    await settled(rt, (await commands.releaseIp(rt, caller, { address })).operation.id);
    await commands.deleteNetwork(rt, caller, { id: network.id });
    expect((await networkOf(network.id)).deleted).toBe(true);
    // Its subnet is free for the project again.
    expect(await codeOf(commands.createNetwork(rt, caller, { name: 'again', cidr: '10.30.0.0/24', external: false }))).toBe('none');
  });

  it('a boot without a network gets a FIXED address on the default 10.0.0.0/24, made once for concurrent first boots', async () => {
    const caller = member();
    const boots = await Promise.all(Array.from({ length: 3 }, (_, i) => commands.bootInstance(rt, caller, { name: `first-${i}`, flavorId, imageId })));
    const ops = await Promise.all(boots.map((b) => settled(rt, b.operation.id)));
    expect(ops.map((o) => o.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(ops[0]!.steps.map((s) => s.name)).toEqual(['schedule', 'allocateAddress', 'plugPort', 'createVm', 'startVm', 'recordRunning']);
    const network = await networkOf(defaultNetworkId(caller.projectId));
    expect(network).toMatchObject({ cidr: '10.0.0.0/24', gateway: '10.0.0.1', projectId: caller.projectId, name: 'default' });
    const byInstance = Object.values(network.addresses).map((a) => a.instanceId).sort();
    expect(byInstance).toEqual(boots.map((b) => b.instance!.id).sort());
    for (const b of boots) expect((await instanceOf(rt, b.instance!.id)).networkId).toBe(network.id);
  });

  it('STRATUS_DEFAULT_NETWORK_CIDR is the subnet of default networks made from then on; one createNetwork would refuse fails at start, named', async () => {
    expect(loadConfig({}).defaultNetworkCidr).toBe('10.0.0.0/24');
    expect(loadConfig({ STRATUS_DEFAULT_NETWORK_CIDR: '172.30.0.0/20' }).defaultNetworkCidr).toBe('172.30.0.0/20');
    for (const bad of ['10.0.0.0/8', '10.0.0.0/30', '10.0.0.5/24', 'ten']) {
      expect(() => loadConfig({ STRATUS_DEFAULT_NETWORK_CIDR: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ STRATUS_DEFAULT_NETWORK_CIDR: bad }), bad).toThrow(/STRATUS_DEFAULT_NETWORK_CIDR/);
    }
    // Another API process, configured otherwise, on the same database and task queue.
    const configured = await createRuntime({ ...rt.config, defaultNetworkCidr: '172.30.0.0/20' });
    try {
      const caller = member();
      const boot = await commands.bootInstance(configured, caller, { name: 'configured', flavorId, imageId });
      expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
      const network = await networkOf(defaultNetworkId(caller.projectId));
      expect(network).toMatchObject({ cidr: '172.30.0.0/20', gateway: '172.30.0.1', name: 'default' });
      expect(Object.values(network.addresses).map((a) => [a.address, a.instanceId])).toEqual([['172.30.0.2', boot.instance!.id]]);
    } finally {
      await configured.close();
    }
  });

  it('a boot that fails after its address step leaves the address free', async () => {
    const caller = member();
    const { network } = await commands.createNetwork(rt, caller, { name: 'failing', cidr: '10.40.0.0/24', external: false });
    await setFaults(agent, { failMethods: 'createVm', failNamePattern: '^doomed' });
    try {
      const boot = await commands.bootInstance(rt, caller, { name: 'doomed-1', flavorId, imageId, networkId: network.id });
      const op = await settled(rt, boot.operation.id);
      expect(op.status).toBe('FAILED');
      expect(op.steps.find((s) => s.name === 'allocateAddress')?.status).toBe('SUCCEEDED');
      expect(op.steps.find((s) => s.name === 'releaseAddress')?.status).toBe('SUCCEEDED');
      expect((await instanceOf(rt, boot.instance!.id)).state).toBe('ERROR');
      const after = await networkOf(network.id);
      expect(after.addresses).toEqual({});
      expect((await streamEvents(network.id)).map((e) => e.type)).toEqual(['NetworkCreated', 'AddressAllocated', 'AddressReleased']);
    } finally {
      await setFaults(agent, {});
    }
  });

  it('deleting an instance releases its FIXED address and disassociates its floating one, which stays the project\'s', async () => {
    const caller = member();
    const { network: external } = await commands.createNetwork(rt, admin, { name: 'public-2', cidr: '198.18.0.0/24', external: true });
    const { network } = await commands.createNetwork(rt, caller, { name: 'app', cidr: '10.50.0.0/24', external: false });
    const boot = await commands.bootInstance(rt, caller, { name: 'web', flavorId, imageId, networkId: network.id });
    expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
    const instanceId = boot.instance!.id;
    const fixed = Object.values((await networkOf(network.id)).addresses)[0]!;
    expect(fixed).toMatchObject({ kind: 'FIXED', instanceId, address: '10.50.0.2' });

    const alloc = await commands.allocateIp(rt, caller, { networkId: external.id, kind: 'FLOATING', instanceId });
    const allocOp = await settled(rt, alloc.operation.id);
    expect(allocOp).toMatchObject({ status: 'SUCCEEDED' });
    expect(allocOp.steps.map((s) => s.name)).toEqual(['allocateAddress', 'associateAddress']);
    const floating = (await networkOf(external.id)).addresses[alloc.operation.resourceId]!;
    expect(floating).toMatchObject({ kind: 'FLOATING', instanceId, fixedAddress: '10.50.0.2', projectId: caller.projectId });

    // Releasing a FIXED address its instance still uses is refused.
    expect(await codeOf(commands.releaseIp(rt, caller, { address: fixed.address }))).toBe('CONFLICT');

    const del = await commands.deleteInstance(rt, caller, { id: instanceId });
    const delOp = await settled(rt, del.operation.id);
    expect(delOp.status).toBe('SUCCEEDED');
    expect(delOp.steps.map((s) => s.name)).toContain('releaseAddresses');
    expect((await networkOf(network.id)).addresses).toEqual({});
    expect((await networkOf(external.id)).addresses[floating.id]).toMatchObject({ instanceId: null, fixedAddress: null, projectId: caller.projectId });
  });

  it('associate and disassociate move a floating address between instances of the project', async () => {
    const caller = member();
    const { network: external } = await commands.createNetwork(rt, admin, { name: 'public-3', cidr: '198.19.0.0/24', external: true });
    const boots = await Promise.all(['a', 'b'].map((n) => commands.bootInstance(rt, caller, { name: `vm-${n}`, flavorId, imageId })));
    for (const b of boots) expect((await settled(rt, b.operation.id)).status).toBe('SUCCEEDED');
    const [a, b] = boots.map((x) => x.instance!.id) as [string, string];
    const alloc = await commands.allocateIp(rt, caller, { networkId: external.id, kind: 'FLOATING' });
    await settled(rt, alloc.operation.id);
    const ip = (await networkOf(external.id)).addresses[alloc.operation.resourceId]!.address;

    const assoc = await commands.associateIp(rt, caller, { address: ip, instanceId: a });
    expect(await settled(rt, assoc.operation.id)).toMatchObject({ status: 'SUCCEEDED', kind: 'ASSOCIATE_IP' });
    expect(await codeOf(commands.associateIp(rt, caller, { address: ip, instanceId: b }))).toBe('CONFLICT');
    // Another project's instance does not exist for the caller.
    const other = member();
    expect(await codeOf(commands.associateIp(rt, other, { address: ip, instanceId: a }))).toBe('NOT_FOUND');

    expect(await settled(rt, (await commands.disassociateIp(rt, caller, { address: ip })).operation.id)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await settled(rt, (await commands.associateIp(rt, caller, { address: ip, instanceId: b })).operation.id)).toMatchObject({ status: 'SUCCEEDED' });
    const held = (await networkOf(external.id)).addresses[alloc.operation.resourceId]!;
    expect(held.instanceId).toBe(b);
    // Releasing an associated floating address disassociates it first.
    const release = await settled(rt, (await commands.releaseIp(rt, caller, { address: ip })).operation.id);
    expect(release).toMatchObject({ status: 'SUCCEEDED' });
    expect(release.steps.map((s) => s.name)).toEqual(['disassociateAddress', 'releaseAddress']);
    expect((await networkOf(external.id)).addresses[held.id]).toBeUndefined();
  });
});
