import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFolded } from '../activities/events.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import { macOf } from '../activities/ports.js';
import { networkStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { networkDecider, type Network } from '../domain/network.js';
import { defaultSecurityGroupId } from '../domain/securityGroup.js';
import type { HostAgentClient } from '../hostagent/client.js';
import { bridgeNameOf, vxlanNameOf } from '../hostagent/drivers/qemu/qemuNetwork.js';
import { tapNameOf } from '../hostagent/network.js';
import { startProjections, type ProjectionRunner } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import {
  bootCount, buildTestGuest, consoleText, guestAddress, killQemusUnder, lastPingRound, nextPing, pingResults, TCP_ANSWER, TCP_PORTS, waitFor, type ConsoleSource, type TestGuest,
} from './support/guest.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { adminCaller, instanceOf, lifecycleRuntime, settled } from './support/lifecycleStack.js';
import { createUnderlay, EXTERNAL_CIDR, EXTERNAL_HOST, type TestUnderlay } from './support/underlay.js';

/**
 * The Linux data plane of the qemu driver with real guests (TCG): two qemu agents, each in a network
 * namespace of its own, joined by the test's underlay namespace; the guests get their addresses by
 * DHCP and ping their neighbours round after round (test/support/guest.ts), which the test reads on
 * their consoles. Security groups are changed through the commands and their workflows.
 */
describe.sequential('guests on two qemu hosts reach each other over VXLAN, and security groups filter them (TCG)', () => {
  let guest: TestGuest;
  let rt: Runtime;
  let worker: RunningWorker;
  let runner: ProjectionRunner;
  let caller: Caller;
  let privateKey: string;
  let underlay: TestUnderlay;
  const agents: { agent: AgentProcess; id: string; client: HostAgentClient; ns: string }[] = [];
  let flavorId: string;
  let imageId: string;
  let network: Network;
  /** The floating address the floating-address test associated with guest A. */
  let floatingAddress: string;

  beforeAll(async () => {
    guest = buildTestGuest();
    underlay = createUnderlay(2);
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'network_qemu');
    rt = stack.rt;
    privateKey = stack.key.privateKey;
    worker = await startWorker(rt);
    runner = await startProjections(rt);
    caller = adminCaller();
    for (const [i, name] of ['net-a', 'net-b'].entries()) {
      const net = underlay.agentOptions(i);
      const driverOptions = {
        accel: 'tcg', capacity: '300,4096,100', stopTimeoutMs: 5000,
        bootKernel: guest.kernelPath, bootInitrd: guest.initrdPath, bootCmdline: guest.cmdline, ...net,
      };
      const agent = await startAgentProcess({ driver: 'qemu', driverOptions, authorizedKeys: [stack.key.publicKey] });
      const { host } = await commands.registerHost(rt, caller, { name, address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
      agents.push({ agent, id: host.id, client: agent.client({ privateKey }), ns: net.netNamespace });
    }
    flavorId = (await commands.createFlavor(rt, caller, { name: 'net.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, caller, { name: 'kernel', format: 'raw', sizeBytes: 1 })).image.id;
    network = (await commands.createNetwork(rt, caller, { name: 'lab', cidr: '10.77.0.0/29', external: false })).network;
  });
  afterAll(async () => {
    for (const a of agents) a.client.close();
    await runner?.stop();
    await worker?.shutdown();
    await Promise.allSettled(agents.map((a) => a.agent.stop()));
    killQemusUnder(...agents.map((a) => a.agent.stateDir));
    underlay?.destroy(agents.map((a) => a.agent.stateDir));
    for (const a of agents) rmSync(a.agent.stateDir, { recursive: true, force: true });
    await rt?.close();
  });

  const agentOf = (hostId: string) => agents.find((a) => a.id === hostId)!;
  const on = (hostId: string): ConsoleSource => ({ consoleLog: (name, opts) => agentOf(hostId).client.call('consoleLog', { name, lines: opts.lines }) });
  const fixedOf = async (instanceId: string) =>
    Object.values((await readFolded(rt, networkStream(network.id), networkDecider)).state!.addresses).find((a) => a.instanceId === instanceId && a.kind === 'FIXED')!;
  /** What the host's namespace holds for a port: its tap, nftables rules naming it, its dnsmasq line. */
  const plumbing = (hostId: string, portId: string) => {
    const { ns, agent } = agentOf(hostId);
    const tap = tapNameOf(portId);
    const links = execFileSync('ip', ['-n', ns, '-o', 'link', 'show']).toString();
    const ruleset = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']).toString();
    const hostsFile = join(agent.stateDir, 'network', 'dhcp', network.id, 'dhcp-hosts');
    const dhcp = existsSync(hostsFile) ? readFileSync(hostsFile, 'utf8') : '';
    return { tap: links.includes(`${tap}:`) || links.includes(`${tap}@`), rules: ruleset.includes(tap), dhcp: dhcp.includes(macOf(portId)) };
  };

  /** What the host's namespace holds for the test network itself: its bridge, its VXLAN device, a dnsmasq serving it. */
  const networkDevices = (hostId: string) => {
    const { ns } = agentOf(hostId);
    const links = execFileSync('ip', ['-n', ns, '-o', 'link', 'show']).toString();
    const has = (name: string) => links.includes(` ${name}:`) || links.includes(` ${name}@`);
    const nsInode = statSync(`/run/netns/${ns}`).ino;
    const dnsmasq = readdirSync('/proc').some((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[0]!.endsWith('dnsmasq') && argv.includes(`--interface=${bridgeNameOf(network.id)}`) && statSync(`/proc/${pid}/ns/net`).ino === nsInode;
      } catch {
        return false;
      }
    });
    return { bridge: has(bridgeNameOf(network.id)), vxlan: has(vxlanNameOf(network.id)), dnsmasq };
  };

  /** Commands run in the test's external namespace, stdin closed; a failed one gives its output, not an exception. */
  const inExternal = async (args: string[]) => {
    const running = promisify(execFile)('ip', ['netns', 'exec', underlay.externalNs, 'busybox', ...args]);
    running.child.stdin?.end();
    try {
      return { ok: true, ...(await running) };
    } catch (e) {
      const failed = e as { stdout?: string; stderr?: string };
      return { ok: false, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  };
  /** The TTL of the answer to one ping from outside, or undefined when none came. */
  const pingTtlFromOutside = async (address: string) => {
    const r = await inExternal(['ping', '-c', '1', '-W', '1', address]);
    return r.ok ? Number(/ttl=(\d+)/.exec(r.stdout)![1]) : undefined;
  };
  /** A TCP connection from outside: answered by the guest's listener, refused (a RST), or no answer at all (dropped). */
  const tcpFromOutside = async (address: string, port: number) => {
    // A dropped SYN shows as no answer once nc gives up connecting (5 s); an admitted one gets its SYN-ACK at once.
    const r = await inExternal(['nc', '-w', '5', address, String(port)]);
    if (r.stdout.includes(TCP_ANSWER)) return 'answered';
    if (r.stderr.includes('timed out')) return 'no answer';
    return r.stderr.includes('refused') ? 'refused' : `failed: ${r.stderr.trim()}`;
  };

  interface Vm { id: string; hostId: string; name: string; address: string; portId: string }
  const vms: Vm[] = [];
  const boot = async (name: string): Promise<Vm> => {
    const b = await commands.bootInstance(rt, caller, { name, flavorId, imageId, networkId: network.id });
    expect((await settled(rt, b.operation.id)).status).toBe('SUCCEEDED');
    const instance = await instanceOf(rt, b.instance!.id);
    const fixed = await fixedOf(instance.id);
    return { id: instance.id, hostId: instance.hostId!, name: vmNameOf(instance), address: fixed.address, portId: fixed.id };
  };

  it('two guests on two hosts get their fixed addresses by DHCP and guest A pings guest B', async () => {
    vms.push(await boot('ping-a'), await boot('ping-b'));
    const [a, b] = vms as [Vm, Vm];
    expect(a.hostId).not.toBe(b.hostId);
    for (const vm of [a, b]) {
      const got = await waitFor(`a DHCP address on ${vm.name}`, 120_000, async () => guestAddress(await consoleText(on(vm.hostId), vm.name)));
      expect(got).toBe(vm.address);
      expect(plumbing(vm.hostId, vm.portId)).toEqual({ tap: true, rules: true, dhcp: true });
    }
    // Both are in the project's default group (ingress from its members): A's pings reach B.
    const reached = await waitFor(`a ping from A to ${b.address} that is answered`, 120_000, async () =>
      pingResults(await consoleText(on(a.hostId), a.name)).find((p) => p.target === b.address && p.ok),
    );
    expect(reached.ok).toBe(true);
  }, 400_000);

  it('a group without an ICMP ingress rule stops the pings; adding the rule lets them through, neither guest restarted', async () => {
    const [a, b] = vms as [Vm, Vm];
    const { securityGroup: quiet } = await commands.createSecurityGroup(rt, caller, { name: 'no-icmp' });
    for (const rule of [
      { direction: 'EGRESS', protocol: 'ANY', remoteCidr: '0.0.0.0/0' },
      { direction: 'INGRESS', protocol: 'TCP', portMin: 22, portMax: 22, remoteCidr: '0.0.0.0/0' },
    ] as const) {
      expect((await settled(rt, (await commands.addSecurityGroupRule(rt, caller, { securityGroupId: quiet.id, ...rule })).operation!.id)).status).toBe('SUCCEEDED');
    }
    const set = await commands.setInstanceSecurityGroups(rt, caller, { instanceId: b.id, securityGroupIds: [quiet.id] });
    expect((await settled(rt, set.operation.id)).status).toBe('SUCCEEDED');
    // A round may have begun before the rules changed; the one after the next began after them.
    let round = lastPingRound(await consoleText(on(a.hostId), a.name)) + 1;
    expect((await nextPing(on(a.hostId), a.name, b.address, round, 120_000)).ok).toBe(false);

    const icmp = await commands.addSecurityGroupRule(rt, caller, { securityGroupId: quiet.id, direction: 'INGRESS', protocol: 'ICMP', remoteCidr: '0.0.0.0/0' });
    expect((await settled(rt, icmp.operation!.id)).status).toBe('SUCCEEDED');
    round = lastPingRound(await consoleText(on(a.hostId), a.name)) + 1;
    expect((await nextPing(on(a.hostId), a.name, b.address, round, 120_000)).ok).toBe(true);
    for (const vm of [a, b]) expect(bootCount(await consoleText(on(vm.hostId), vm.name))).toBe(1);
  }, 400_000);

  it('guest B keeps answering at its address after a live migration to the other host; its port leaves the source', async () => {
    const [a, b] = vms as [Vm, Vm];
    const source = b.hostId;
    const target = agents.find((x) => x.id !== source)!.id;
    const moved = await settled(rt, (await commands.migrateInstance(rt, caller, { id: b.id, targetHostId: target })).operation.id);
    expect(moved.status).toBe('SUCCEEDED');
    expect(moved.steps.map((s) => s.name)).toEqual(expect.arrayContaining(['plugAttachments', 'migrateReceive', 'migrateSend']));
    b.hostId = target;
    expect(plumbing(target, b.portId)).toEqual({ tap: true, rules: true, dhcp: true });
    expect(plumbing(source, b.portId)).toEqual({ tap: false, rules: false, dhcp: false });
    // B was the source's last port of the network: its bridge, VXLAN device and dnsmasq went with it.
    expect(networkDevices(target)).toEqual({ bridge: true, vxlan: true, dnsmasq: true });
    expect(networkDevices(source)).toEqual({ bridge: false, vxlan: false, dnsmasq: false });
    const round = lastPingRound(await consoleText(on(a.hostId), a.name)) + 1;
    expect((await nextPing(on(a.hostId), a.name, b.address, round, 120_000)).ok).toBe(true);
    // The same boot, moved: the target's console never saw it start, and it still has its address.
    expect(bootCount(await consoleText(on(target), b.name))).toBe(0);
  }, 400_000);

  it('a floating address associated with guest A answers a ping from the external namespace; after disassociation it does not, and associated again it does', async () => {
    const a = vms[0]!;
    const { network: external } = await commands.createNetwork(rt, caller, { name: 'public', cidr: EXTERNAL_CIDR, gateway: EXTERNAL_HOST, external: true });
    // The default group admits only its members: the outside needs an ICMP rule.
    const icmp = await commands.addSecurityGroupRule(rt, caller, { securityGroupId: defaultSecurityGroupId(caller.projectId), direction: 'INGRESS', protocol: 'ICMP', remoteCidr: '0.0.0.0/0' });
    expect((await settled(rt, icmp.operation!.id)).status).toBe('SUCCEEDED');
    const allocated = await commands.allocateIp(rt, caller, { networkId: external.id, kind: 'FLOATING', instanceId: a.id });
    expect((await settled(rt, allocated.operation.id)).status).toBe('SUCCEEDED');
    const floating = Object.values((await readFolded(rt, networkStream(external.id), networkDecider)).state!.addresses).find((x) => x.instanceId === a.id)!;
    expect(floating.fixedAddress).toBe(a.address);
    floatingAddress = floating.address;
    const ttl = await waitFor(`${floating.address} answering from outside`, 60_000, () => pingTtlFromOutside(floating.address));
    // The router namespace holds the /32 (to answer ARP for it), so without DNAT it would answer the
    // ping itself, at TTL 64. Guest A's answer starts at 64 too and is routed twice on its way out, by
    // the agent's namespace (the guest's gateway) and by the router's: only that one arrives at 62.
    expect(ttl).toBe(62);

    const dis = await commands.disassociateIp(rt, caller, { address: floating.address });
    expect((await settled(rt, dis.operation.id)).status).toBe('SUCCEEDED');
    expect(await pingTtlFromOutside(floating.address)).toBeUndefined();
    // The host's last floating address went with that: the router must still have its way out.
    const again = await commands.associateIp(rt, caller, { address: floating.address, instanceId: a.id });
    expect((await settled(rt, again.operation.id)).status).toBe('SUCCEEDED');
    expect(await waitFor(`${floating.address} answering from outside again`, 60_000, () => pingTtlFromOutside(floating.address))).toBe(62);
    // The guest itself was never restarted.
    expect(bootCount(await consoleText(on(a.hostId), a.name))).toBe(1);
  }, 300_000);

  it('a TCP port-range rule admits both ends of its range and nothing beside them; a remote CIDR admits only sources inside it', async () => {
    // Guest A listens on every port of TCP_PORTS; the external namespace (EXTERNAL_HOST) connects through
    // the floating address, so the compiled rules of A's port on real nftables decide, on A's host.
    const addRule = async (rule: { portMin: number; portMax: number; remoteCidr: string }) => {
      const added = await commands.addSecurityGroupRule(rt, caller, { securityGroupId: defaultSecurityGroupId(caller.projectId), direction: 'INGRESS', protocol: 'TCP', ...rule });
      expect((await settled(rt, added.operation!.id)).status).toBe('SUCCEEDED');
    };
    await addRule({ portMin: 8000, portMax: 8009, remoteCidr: EXTERNAL_CIDR });
    await addRule({ portMin: 9000, portMax: 9000, remoteCidr: '198.51.100.0/24' });
    const probe = async () => Object.fromEntries(await Promise.all(TCP_PORTS.map(async (port) => [port, await tcpFromOutside(floatingAddress, port)])));
    // 'no answer', not 'refused': the guest listens there too, the rules drop the connection.
    expect(await probe()).toEqual({ 7999: 'no answer', 8000: 'answered', 8009: 'answered', 8010: 'no answer', 9000: 'no answer' });
    // Port 9000 from a CIDR that holds the external host: the remote CIDR was what kept it out.
    await addRule({ portMin: 9000, portMax: 9000, remoteCidr: `${EXTERNAL_HOST}/32` });
    expect(await probe()).toEqual({ 7999: 'no answer', 8000: 'answered', 8009: 'answered', 8010: 'no answer', 9000: 'answered' });
    const dis = await commands.disassociateIp(rt, caller, { address: floatingAddress });
    expect((await settled(rt, dis.operation.id)).status).toBe('SUCCEEDED');
  }, 300_000);

  it('deleting a booted instance leaves no tap, nftables rule or dnsmasq entry on its host', async () => {
    const b = vms[1]!;
    expect(plumbing(b.hostId, b.portId)).toEqual({ tap: true, rules: true, dhcp: true });
    const del = await commands.deleteInstance(rt, caller, { id: b.id });
    expect((await settled(rt, del.operation.id)).status).toBe('SUCCEEDED');
    expect(plumbing(b.hostId, b.portId)).toEqual({ tap: false, rules: false, dhcp: false });
  });

  it('a boot that fails after its address step (QEMU refuses the flavor) leaves no tap, rule or dnsmasq entry behind', async () => {
    // q35 takes at most 288 vCPUs: createVm succeeds, QEMU refuses to start.
    const huge = (await commands.createFlavor(rt, caller, { name: 'net.huge', vcpus: 290, memoryMb: 256, diskGb: 1 })).flavor.id;
    const b = await commands.bootInstance(rt, caller, { name: 'doomed', flavorId: huge, imageId, networkId: network.id });
    const op = await settled(rt, b.operation.id);
    expect(op.status).toBe('FAILED');
    expect(op.steps.map((s) => [s.name, s.status])).toEqual(expect.arrayContaining([['plugPort', 'SUCCEEDED'], ['startVm', 'FAILED'], ['unplugPort', 'SUCCEEDED'], ['releaseAddress', 'SUCCEEDED']]));
    // Only guest A's port is left anywhere: one tap, its rules and its dnsmasq line, on its host.
    const a = vms[0]!;
    for (const agent of agents) {
      const links = execFileSync('ip', ['-n', agent.ns, '-o', 'link', 'show']).toString();
      const taps = [...links.matchAll(/ (tap[0-9a-f]{11})[:@]/g)].map((m) => m[1]);
      const ruleset = execFileSync('ip', ['netns', 'exec', agent.ns, 'nft', 'list', 'ruleset']).toString();
      const hostsFile = join(agent.agent.stateDir, 'network', 'dhcp', network.id, 'dhcp-hosts');
      const dhcp = existsSync(hostsFile) ? readFileSync(hostsFile, 'utf8').split('\n').filter(Boolean) : [];
      const ports = (await agent.client.call('listPorts', {})).ports;
      if (agent.id === a.hostId) {
        expect(networkDevices(agent.id)).toEqual({ bridge: true, vxlan: true, dnsmasq: true });
        expect(taps).toEqual([tapNameOf(a.portId)]);
        expect([...ruleset.matchAll(/tap[0-9a-f]{11}/g)].every((m) => m[0] === tapNameOf(a.portId))).toBe(true);
        expect(dhcp).toEqual([`${macOf(a.portId)},${a.address}`]);
        expect(ports.map((p) => p.portId)).toEqual([a.portId]);
      } else {
        expect({ taps, tapsInRules: ruleset.match(/tap[0-9a-f]{11}/g), dhcp, ports }).toEqual({ taps: [], tapsInRules: null, dhcp: [], ports: [] });
        // No port of the network is left here: nor is its bridge, its VXLAN device or its dnsmasq.
        expect(networkDevices(agent.id)).toEqual({ bridge: false, vxlan: false, dnsmasq: false });
      }
    }
  });
});
