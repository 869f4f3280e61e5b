import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFolded } from '../activities/events.js';
import { plugInstancePorts, unplugInstancePorts, vniOf } from '../activities/ports.js';
import { networkStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { networkDecider, type Network } from '../domain/network.js';
import { AddSecurityGroupRuleInput, defaultSecurityGroupId } from '../domain/securityGroup.js';
import type { PortInfo } from '../hostagent/network.js';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { parseInput } from '../schema/errors.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import type { AgentProcess } from './support/hostagent.js';
import { eventually } from './support/eventually.js';
import { adminCaller, instanceOf, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

const member = (projectId = randomUUID()): Caller => ({ tokenId: `member-${projectId}`, projectId, role: 'MEMBER' });
const codeOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'none',
    (e: unknown) => (e as { code?: string }).code ?? String(e),
  );
const rulesText = (port: PortInfo | undefined) =>
  (port?.rules ?? []).map((r) => `${r.direction} ${r.protocol} ${r.portMin ?? ''}-${r.portMax ?? ''} ${r.remoteGroupId ? `group ${r.remoteGroupId}` : r.remoteCidr}`).sort();

describe('ports, security groups and floating NAT on the sim data plane, over real SSH, Temporal and PostgreSQL', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let projections: ProjectionRunner;
  let privateKey: string;
  const hosts: { agent: AgentProcess; id: string; name: string }[] = [];
  let flavorId: string;
  let imageId: string;
  const admin = adminCaller();

  /** Every port on every host, by port id, as the agents report them; the group members each host holds. */
  const members = new Map<string, Record<string, string[]>>();
  const portsEverywhere = async () => {
    const all = new Map<string, PortInfo & { hostId: string }>();
    for (const h of hosts) {
      const client = h.agent.client({ privateKey });
      try {
        const listed = await client.call('listPorts', {});
        for (const p of listed.ports) all.set(p.portId, { ...p, hostId: h.id });
        members.set(h.id, listed.groups);
      } finally {
        client.close();
      }
    }
    return all;
  };
  const networkOf = async (id: string): Promise<Network> => (await readFolded(rt, networkStream(id), networkDecider)).state!;
  const boot = async (caller: Caller, name: string, networkId?: string) => {
    const b = await commands.bootInstance(rt, caller, { name, flavorId, imageId, ...(networkId ? { networkId } : {}) });
    const op = await settled(rt, b.operation.id);
    return { id: b.instance!.id, op };
  };
  const fixedOf = async (networkId: string, instanceId: string) => Object.values((await networkOf(networkId)).addresses).find((a) => a.instanceId === instanceId && a.kind === 'FIXED')!;

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'network_secgroups');
    rt = stack.rt;
    privateKey = stack.key.privateKey;
    worker = await startWorker(rt);
    projections = await startProjections(rt);
    for (const name of ['sg-host-1', 'sg-host-2']) {
      // Placement weighs by free memory, so consecutive boots alternate between the two.
      const { agent, host } = await simHost(rt, admin, stack.key.publicKey, name, { vcpus: 16, memoryMb: 4096, diskGb: 100 });
      hosts.push({ agent, id: host.id, name });
    }
    flavorId = (await commands.createFlavor(rt, admin, { name: 'sg.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, admin, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await projections?.stop();
    await Promise.all(hosts.map((h) => h.agent.stop()));
    await rt?.close();
  });

  it('a boot plugs a port on its host with its fixed address, a MAC from the port, the VNI and the default group\'s rules; rule changes reach every host', async () => {
    const caller = member();
    const a = await boot(caller, 'sg-a');
    const b = await boot(caller, 'sg-b');
    expect(a.op.steps.map((s) => s.name)).toEqual(['schedule', 'allocateAddress', 'plugPort', 'createVm', 'startVm', 'recordRunning']);
    const [ia, ib] = [await instanceOf(rt, a.id), await instanceOf(rt, b.id)];
    expect(ia.hostId).not.toBe(ib.hostId);
    const [fa, fb] = [await fixedOf(ia.networkId!, a.id), await fixedOf(ib.networkId!, b.id)];
    let ports = await portsEverywhere();
    expect(ports.get(fa.id)).toMatchObject({ hostId: ia.hostId, address: fa.address, networkId: ia.networkId, vni: vniOf(ia.networkId!), gateway: '10.0.0.1', cidr: '10.0.0.0/24' });
    expect(ports.get(fa.id)!.mac).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
    expect(ports.get(fa.id)!.tap.length).toBeLessThanOrEqual(15);
    // The default group: ingress from its members, all egress; both hosts come to know both members,
    // though a was plugged before b existed (a's host hears of b from the project's fan-out).
    const dflt = defaultSecurityGroupId(caller.projectId);
    expect(rulesText(ports.get(fb.id))).toEqual([`EGRESS ANY - 0.0.0.0/0`, `INGRESS ANY - group ${dflt}`]);
    // b's own host knows its members when b's boot is done, without waiting for the fan-out.
    expect(members.get(ib.hostId!)![dflt]).toEqual([fa.address, fb.address].sort());
    for (const h of hosts) await eventually(async () => (await portsEverywhere(), members.get(h.id)![dflt])).toEqual([fa.address, fb.address].sort());

    const added = await commands.addSecurityGroupRule(rt, caller, { securityGroupId: defaultSecurityGroupId(caller.projectId), direction: 'INGRESS', protocol: 'ICMP', remoteCidr: '0.0.0.0/0' });
    const op = await settled(rt, added.operation!.id);
    expect(op).toMatchObject({ kind: 'UPDATE_SECURITY_GROUPS', status: 'SUCCEEDED' });
    expect(op.steps.map((s) => s.name).sort()).toEqual(['applyRules:sg-host-1', 'applyRules:sg-host-2', 'recordApplied']);
    ports = await portsEverywhere();
    for (const f of [fa, fb]) expect(rulesText(ports.get(f.id))).toEqual([`EGRESS ANY - 0.0.0.0/0`, `INGRESS ANY - group ${dflt}`, 'INGRESS ICMP - 0.0.0.0/0']);

    // a leaves the default group for one that only lets ssh in: b no longer admits a's address.
    const { securityGroup: web } = await commands.createSecurityGroup(rt, caller, { name: 'web' });
    await settled(rt, (await commands.addSecurityGroupRule(rt, caller, { securityGroupId: web.id, direction: 'INGRESS', protocol: 'TCP', portMin: 22, portMax: 22, remoteCidr: '0.0.0.0/0' })).operation!.id);
    const set = await commands.setInstanceSecurityGroups(rt, caller, { instanceId: a.id, securityGroupIds: [web.id] });
    const setOp = await settled(rt, set.operation.id);
    expect(setOp.status).toBe('SUCCEEDED');
    expect(setOp.steps[0]!.name).toBe('setGroups');
    ports = await portsEverywhere();
    expect(rulesText(ports.get(fa.id))).toEqual(['INGRESS TCP 22-22 0.0.0.0/0']);
    expect(rulesText(ports.get(fb.id))).toEqual([`EGRESS ANY - 0.0.0.0/0`, `INGRESS ANY - group ${dflt}`, 'INGRESS ICMP - 0.0.0.0/0']);
    await eventually(async () => (await portsEverywhere(), members.get(ib.hostId!)![dflt])).toEqual([fb.address]);

    // Removing a rule finds its group through the read model.
    await waitForProjections(rt);
    const icmp = added.securityGroup.rules.find((r) => r.protocol === 'ICMP')!;
    expect(await codeOf(commands.removeSecurityGroupRule(rt, member(), { id: icmp.id }))).toBe('NOT_FOUND');
    const removed = await commands.removeSecurityGroupRule(rt, caller, { id: icmp.id });
    expect((await settled(rt, removed.operation!.id)).status).toBe('SUCCEEDED');
    expect(rulesText((await portsEverywhere()).get(fb.id))).toEqual([`EGRESS ANY - 0.0.0.0/0`, `INGRESS ANY - group ${dflt}`]);

    // Deleting b: every host whose ports name the default group learns it left. c and d, in the default
    // group, one on each host, make both hosts such hosts (a is in web now and names no group).
    const c = await boot(caller, 'sg-c');
    const d = await boot(caller, 'sg-d');
    const [ic, id] = [await instanceOf(rt, c.id), await instanceOf(rt, d.id)];
    expect(new Set([ic.hostId, id.hostId])).toEqual(new Set(hosts.map((h) => h.id)));
    const [fc, fd] = [await fixedOf(ic.networkId!, c.id), await fixedOf(id.networkId!, d.id)];
    await settled(rt, (await commands.deleteInstance(rt, caller, { id: b.id })).operation.id);
    for (const h of hosts) await eventually(async () => (await portsEverywhere(), members.get(h.id)![dflt])).toEqual([fc.address, fd.address].sort());
  });

  it('bad rules are BAD_USER_INPUT, another project\'s groups do not exist, and neither writes anything', async () => {
    const caller = member();
    const other = member();
    const { securityGroup } = await commands.createSecurityGroup(rt, other, { name: 'theirs' });
    const count = async () => Number((await rt.db.query<{ n: string }>('SELECT count(*)::text AS n FROM events'))[0]!.n);
    const before = await count();
    const parse = (input: Record<string, unknown>) => codeOf(Promise.resolve().then(() => parseInput(AddSecurityGroupRuleInput, input)));
    const base = { securityGroupId: securityGroup.id, direction: 'INGRESS', protocol: 'TCP', remoteCidr: '0.0.0.0/0' };
    expect(await parse({ ...base, protocol: 'ICMP', portMin: 1 })).toBe('BAD_USER_INPUT');
    expect(await parse({ ...base, portMin: 90, portMax: 80 })).toBe('BAD_USER_INPUT');
    expect(await parse({ ...base, remoteCidr: '10.0.0.1/24' })).toBe('BAD_USER_INPUT');
    expect(await parse({ ...base, direction: 'SIDEWAYS' })).toBe('BAD_USER_INPUT');
    expect(await parse({ ...base, portMin: 70000 })).toBe('BAD_USER_INPUT');
    expect(await codeOf(commands.addSecurityGroupRule(rt, caller, { securityGroupId: securityGroup.id, direction: 'INGRESS', protocol: 'ANY', remoteCidr: '0.0.0.0/0' }))).toBe('NOT_FOUND');
    expect(await codeOf(commands.createSecurityGroup(rt, caller, { name: 'default' }))).toBe('CONFLICT');
    expect(await count()).toBe(before);
    const mine = await boot(caller, 'sg-mine');
    expect(await codeOf(commands.setInstanceSecurityGroups(rt, caller, { instanceId: mine.id, securityGroupIds: [securityGroup.id] }))).toBe('NOT_FOUND');
    expect(await codeOf(commands.setInstanceSecurityGroups(rt, other, { instanceId: mine.id, securityGroupIds: [] }))).toBe('NOT_FOUND');
  });

  it('a floating address is NATed on its instance\'s port while associated, and deleting the instance leaves no port behind', async () => {
    const caller = member();
    const { network: external } = await commands.createNetwork(rt, admin, { name: 'sg-public', cidr: '198.20.0.0/24', external: true });
    const vm = await boot(caller, 'sg-nat');
    const instance = await instanceOf(rt, vm.id);
    const fixed = await fixedOf(instance.networkId!, vm.id);
    const alloc = await commands.allocateIp(rt, caller, { networkId: external.id, kind: 'FLOATING', instanceId: vm.id });
    expect((await settled(rt, alloc.operation.id)).status).toBe('SUCCEEDED');
    const floating = (await networkOf(external.id)).addresses[alloc.operation.resourceId]!.address;
    expect((await portsEverywhere()).get(fixed.id)!.floatingAddresses).toEqual([floating]);
    await settled(rt, (await commands.disassociateIp(rt, caller, { address: floating })).operation.id);
    expect((await portsEverywhere()).get(fixed.id)!.floatingAddresses).toEqual([]);
    await settled(rt, (await commands.associateIp(rt, caller, { address: floating, instanceId: vm.id })).operation.id);
    expect((await portsEverywhere()).get(fixed.id)!.floatingAddresses).toEqual([floating]);

    const del = await settled(rt, (await commands.deleteInstance(rt, caller, { id: vm.id })).operation.id);
    expect(del.status).toBe('SUCCEEDED');
    expect((await portsEverywhere()).has(fixed.id)).toBe(false);
    expect((await networkOf(instance.networkId!)).addresses[fixed.id]).toBeUndefined();
  });

  it('a boot that fails after plugging its port leaves no port on the host and its address free', async () => {
    const caller = member();
    for (const h of hosts) await setFaults(h.agent, { failMethods: 'createVm', failNamePattern: '^sg-doomed' });
    try {
      const b = await commands.bootInstance(rt, caller, { name: 'sg-doomed', flavorId, imageId });
      const op = await settled(rt, b.operation.id);
      expect(op.status).toBe('FAILED');
      expect(op.steps.map((s) => [s.name, s.status])).toEqual([
        ['schedule', 'SUCCEEDED'],
        ['allocateAddress', 'SUCCEEDED'],
        ['plugPort', 'SUCCEEDED'],
        ['createVm', 'FAILED'],
        ['destroyVm', 'SUCCEEDED'],
        ['unplugPort', 'SUCCEEDED'],
        ['releaseAddress', 'SUCCEEDED'],
        ['releaseClaim', 'SUCCEEDED'],
      ]);
      const instance = await instanceOf(rt, b.instance!.id);
      const network = await networkOf(instance.networkId!);
      expect(Object.values(network.addresses).filter((a) => a.instanceId === instance.id)).toEqual([]);
      const ports = await portsEverywhere();
      expect([...ports.values()].filter((p) => p.vmName.startsWith('sg-doomed'))).toEqual([]);
    } finally {
      for (const h of hosts) await setFaults(h.agent, {});
    }
  });

  it('the migration hook plugs the same port (MAC, address, rules, floating NAT) on another host and unplugs it from the old one', async () => {
    const caller = member();
    const { network: external } = await commands.createNetwork(rt, admin, { name: 'sg-public-2', cidr: '198.21.0.0/24', external: true });
    const vm = await boot(caller, 'sg-mover');
    const instance = await instanceOf(rt, vm.id);
    const fixed = await fixedOf(instance.networkId!, vm.id);
    await settled(rt, (await commands.allocateIp(rt, caller, { networkId: external.id, kind: 'FLOATING', instanceId: vm.id })).operation.id);
    const before = (await portsEverywhere()).get(fixed.id)!;
    const target = hosts.find((h) => h.id !== instance.hostId)!;

    const specs = await plugInstancePorts(rt, instance, target.id, `test-move-${vm.id}:plug`);
    expect(specs.map((p) => p.portId)).toEqual([fixed.id]);
    await unplugInstancePorts(rt, instance, instance.hostId!, `test-move-${vm.id}:unplug`);
    const after = (await portsEverywhere()).get(fixed.id)!;
    expect(after.hostId).toBe(target.id);
    const same = ({ mac, address, vni, rules, floatingAddresses, tap }: PortInfo) => ({ mac, address, vni, rules, floatingAddresses, tap });
    expect(same(after)).toEqual(same(before));
    expect(after.floatingAddresses).toHaveLength(1);
  });
  it('a live migration moves the port to the target and off the source; an abandoned one leaves it where it was; a cold one moves it too', async () => {
    const caller = member();
    const vm = await boot(caller, 'sg-migrant');
    const instance = await instanceOf(rt, vm.id);
    const fixed = await fixedOf(instance.networkId!, vm.id);
    const source = instance.hostId!;
    const target = hosts.find((h) => h.id !== source)!;
    const before = (await portsEverywhere()).get(fixed.id)!;
    expect(before.hostId).toBe(source);

    const moved = await settled(rt, (await commands.migrateInstance(rt, admin, { id: vm.id, targetHostId: target.id })).operation.id);
    expect(moved.status).toBe('SUCCEEDED');
    const hostsWithPort = async () => {
      const found: string[] = [];
      for (const h of hosts) {
        const client = h.agent.client({ privateKey });
        try {
          if ((await client.call('listPorts', {})).ports.some((p) => p.portId === fixed.id)) found.push(h.id);
        } finally {
          client.close();
        }
      }
      return found;
    };
    expect(await hostsWithPort()).toEqual([target.id]);
    const after = (await portsEverywhere()).get(fixed.id)!;
    expect({ mac: after.mac, address: after.address, rules: after.rules }).toEqual({ mac: before.mac, address: before.address, rules: before.rules });

    // Back to the first host, but the transfer fails: the port plugged there for it is taken off again.
    await setFaults(target.agent, { failMethods: 'migrateSend', failNamePattern: '.' });
    try {
      const failed = await settled(rt, (await commands.migrateInstance(rt, admin, { id: vm.id, targetHostId: source })).operation.id);
      expect(failed.status).toBe('FAILED');
      expect(failed.steps.map((s) => s.name)).toEqual(expect.arrayContaining(['plugAttachments', 'abandonTarget']));
    } finally {
      await setFaults(target.agent, {});
    }
    expect(await hostsWithPort()).toEqual([target.id]);
    expect((await instanceOf(rt, vm.id)).hostId).toBe(target.id);

    // A cold migration (the instance stopped) moves it the same way.
    expect((await settled(rt, (await commands.stopInstance(rt, caller, { id: vm.id })).operation.id)).status).toBe('SUCCEEDED');
    const cold = await settled(rt, (await commands.migrateInstance(rt, admin, { id: vm.id, targetHostId: source })).operation.id);
    expect(cold.status).toBe('SUCCEEDED');
    expect(cold.steps.map((s) => s.name)).toContain('copyDisk');
    expect(await hostsWithPort()).toEqual([source]);
  });
});
