import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../atomicFile.js';
import { AgentError, type CallContext } from '../../driver.js';
import { groupsMissingFrom, PortInfo, tapNameOf, type NetworkDataPlane, type PluggedPort, type PortSpec } from '../../network.js';
import { serveHosts, hostsLine, stopDhcp } from '../../linuxNet/dnsmasq.js';
import {
  attachToBridge, deleteLink, ensureAddress, ensureBridge, ensureNamespace, ensureVxlan, linkExists, linkUp, moveIntoNs,
} from '../../linuxNet/ip.js';
import { applyScript, baseScript, groupScript, portScript, removePort, unroutePort } from '../../linuxNet/nftables.js';
import { applyNat, ensureRouter, routeSubnet, unrouteSubnet, type RouterConfig } from '../../linuxNet/router.js';

/**
 * The qemu driver's data plane (Neutron's Linux-bridge agent, in one namespace the agent owns):
 * - a bridge per network (`br` + 11 hex digits of the network id) holding the network's gateway
 *   address, as every host's bridge does (a distributed gateway: the bridge table keeps the host side
 *   off the VXLAN devices, see linuxNet/nftables.ts);
 * - a VXLAN device per network (`vx-` + 11 hex digits, the port's VNI) on the underlay device, its
 *   flooding sent to a multicast group of the underlay (the `vxlanGroup` option) and remote MACs learnt;
 * - a dnsmasq per network answering this host's ports by MAC (linuxNet/dnsmasq.ts);
 * - with an external device, a router namespace NATing floating addresses (linuxNet/router.ts);
 * - a tap per port, made by QEMU (`-netdev tap,ifname=`) when the VM's process starts and moved into the
 *   namespace at once, then put on the bridge; nftables chains per tap for its security groups.
 * Ports and group members are kept in <stateDir>/network/state.json, so a restarted agent and a VM
 * started later know their NICs.
 */

export const NetworkOptions = z.object({
  /** The namespace the agent owns; without it the driver has no data plane (UNSUPPORTED). */
  netNamespace: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/).optional(),
  /** The underlay device: moved from the host's namespace into the agent's at start if it is still there. */
  underlayDevice: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/).optional(),
  /** This host's address on the underlay, `a.b.c.d/len`. */
  underlayAddress: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/).optional(),
  /** The underlay multicast group every VXLAN device floods to. */
  vxlanGroup: z.ipv4().default('239.1.1.1'),
  /** The external network's device, moved into the router namespace: without it, floating addresses are only recorded. */
  externalDevice: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/).optional(),
  /** The external network's CIDR, reached on that device (its hosts answer the floating addresses). */
  externalRoute: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/).optional(),
  /** `<netNamespace>-r` unless set. */
  routerNamespace: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/).optional(),
});
export type NetworkOptions = z.infer<typeof NetworkOptions>;

/** VXLAN over IPv4 takes 50 bytes of a 1500-byte underlay frame. */
export const GUEST_MTU = 1450;

const State = z.object({ ports: z.record(z.string(), PortInfo).default({}), groups: z.record(z.string(), z.array(z.string())).default({}) });
type State = z.infer<typeof State>;

const idHead = (id: string) => id.replace(/-/g, '').slice(0, 11);
export const bridgeNameOf = (networkId: string) => `br${idHead(networkId)}`;
export const vxlanNameOf = (networkId: string) => `vx-${idHead(networkId)}`;

function subnetOf(cidr: string): { network: string; netmask: string; prefix: number; cidr: string } {
  const [addr, len] = cidr.split('/');
  const prefix = Number(len);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const dotted = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
  const ip = addr!.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  return { network: dotted((ip & mask) >>> 0), netmask: dotted(mask), prefix, cidr: `${dotted((ip & mask) >>> 0)}/${prefix}` };
}

export class QemuNetwork implements NetworkDataPlane {
  readonly ns: string;
  private readonly dir: string;
  private lock: Promise<unknown> = Promise.resolve();
  private readonly router?: RouterConfig;

  constructor(
    stateDir: string,
    private readonly options: NetworkOptions & { netNamespace: string },
  ) {
    this.ns = options.netNamespace;
    this.dir = join(stateDir, 'network');
    if (options.externalDevice) {
      this.router = { ns: options.routerNamespace ?? `${this.ns}-r`, agentNs: this.ns, externalDevice: options.externalDevice, externalRoute: options.externalRoute };
    }
  }

  /** The router's namespace, when there is one. */
  get routerNs(): string | undefined {
    return this.router?.ns;
  }

  async init(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    await ensureNamespace(this.ns);
    const { underlayDevice, underlayAddress } = this.options;
    if (underlayDevice) {
      await moveIntoNs(this.ns, underlayDevice);
      if (!(await linkExists(this.ns, underlayDevice))) throw new Error(`underlay device ${underlayDevice} is in neither the host's namespace nor ${this.ns}`);
      if (underlayAddress) await ensureAddress(this.ns, underlayDevice, underlayAddress);
      await linkUp(this.ns, underlayDevice);
    }
    await applyScript(this.ns, baseScript());
    if (this.router) await ensureRouter(this.router);
  }

  private get statePath() {
    return join(this.dir, 'state.json');
  }

  private read(): State {
    return State.parse(existsSync(this.statePath) ? JSON.parse(readFileSync(this.statePath, 'utf8')) : {});
  }

  private write(state: State): void {
    writeFileAtomic(this.statePath, JSON.stringify(state, null, 2));
  }

  /** One change at a time: each reads the state file, plumbs, and writes it back. */
  private serial<T>(fn: (state: State) => Promise<T>): Promise<T> {
    const run = this.lock.then(() => fn(this.read()));
    this.lock = run.catch(() => undefined);
    return run;
  }

  async listPorts() {
    const s = this.read();
    return { ports: Object.values(s.ports), groups: s.groups };
  }

  /** The NICs QEMU gets for a VM: its ports on this host, in the order they were plugged. */
  nicsOf(vmName: string): { tap: string; mac: string }[] {
    return Object.values(this.read().ports)
      .filter((p) => p.vmName === vmName)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.portId.localeCompare(b.portId))
      .map((p) => ({ tap: p.tap, mac: p.mac }));
  }

  /** After QEMU started (or received) a VM: its taps, made in the host's namespace, join their bridges. */
  attachVm(vmName: string): Promise<void> {
    return this.serial(async (s) => {
      for (const p of Object.values(s.ports).filter((x) => x.vmName === vmName)) await this.attachTap(p);
    });
  }

  private async attachTap(p: PortInfo): Promise<void> {
    await moveIntoNs(this.ns, p.tap);
    if (await linkExists(this.ns, p.tap)) await attachToBridge(this.ns, p.tap, bridgeNameOf(p.networkId), GUEST_MTU);
  }

  private async ensureNetwork(p: PortSpec): Promise<void> {
    const bridge = bridgeNameOf(p.networkId);
    await ensureBridge(this.ns, bridge);
    await ensureAddress(this.ns, bridge, `${p.gateway}/${subnetOf(p.cidr).prefix}`);
    if (this.options.underlayDevice) {
      await ensureVxlan(this.ns, { name: vxlanNameOf(p.networkId), vni: p.vni, group: this.options.vxlanGroup, underlay: this.options.underlayDevice, bridge, mtu: GUEST_MTU });
    }
    if (this.router) await routeSubnet(this.router, subnetOf(p.cidr).cidr);
  }

  /** Every floating address of this host's ports, NATed in the router (when there is one). */
  private async applyFloating(s: State): Promise<void> {
    if (!this.router) return;
    await applyNat(this.router, Object.values(s.ports).flatMap((p) => p.floatingAddresses.map((floating) => ({ floating, fixed: p.address }))));
  }

  private async serveDhcp(s: State, p: Pick<PortSpec, 'networkId' | 'cidr' | 'gateway'>): Promise<void> {
    const dir = join(this.dir, 'dhcp', p.networkId);
    const ports = Object.values(s.ports).filter((x) => x.networkId === p.networkId);
    if (ports.length === 0) return stopDhcp(dir);
    mkdirSync(dir, { recursive: true });
    const { network, netmask } = subnetOf(p.cidr);
    await serveHosts({ dir, ns: this.ns, bridge: bridgeNameOf(p.networkId), network, netmask, gateway: p.gateway, mtu: GUEST_MTU }, ports.map((x) => hostsLine(x.mac, x.address)).sort());
  }

  plugPort(spec: PortSpec, _ctx: CallContext): Promise<PluggedPort> {
    return this.serial(async (s) => {
      const existing = s.ports[spec.portId];
      if (existing && (existing.mac !== spec.mac || existing.address !== spec.address)) {
        throw new AgentError('ALREADY_EXISTS', `port ${spec.portId} is plugged with another MAC or address`);
      }
      const port: PortInfo = { ...spec, tap: tapNameOf(spec.portId), createdAt: existing?.createdAt ?? new Date().toISOString() };
      await this.ensureNetwork(spec);
      await applyScript(this.ns, portScript(port));
      s.ports[port.portId] = port;
      this.write(s);
      await this.serveDhcp(s, port);
      await this.applyFloating(s);
      await this.attachTap(port);
      return { ...port, groupsMissing: groupsMissingFrom(spec.rules, s.groups) };
    });
  }

  unplugPort(portId: string, _ctx: CallContext): Promise<{ unplugged: boolean }> {
    return this.serial(async (s) => {
      const port = s.ports[portId];
      if (!port) return { unplugged: false };
      await deleteLink(this.ns, port.tap);
      await removePort(this.ns, port.portId, port.tap, port.address);
      delete s.ports[portId];
      this.write(s);
      await this.serveDhcp(s, port);
      await this.applyFloating(s);
      if (!Object.values(s.ports).some((x) => x.networkId === port.networkId)) {
        await deleteLink(this.ns, vxlanNameOf(port.networkId));
        await deleteLink(this.ns, bridgeNameOf(port.networkId));
        if (this.router) await unrouteSubnet(this.router, subnetOf(port.cidr).cidr);
      }
      return { unplugged: true };
    });
  }

  setPortRules(ports: { portId: string; rules: PortInfo['rules'] }[], _ctx: CallContext): Promise<{ updated: number }> {
    return this.serial(async (s) => {
      let updated = 0;
      // Ports that left this host since the controller looked are skipped: their new host gets its own call.
      for (const { portId, rules } of ports) {
        const port = s.ports[portId];
        if (!port) continue;
        port.rules = rules;
        await applyScript(this.ns, portScript(port));
        updated++;
      }
      this.write(s);
      return { updated };
    });
  }

  /** DNAT/SNAT in the router namespace; only recorded on a host configured without an external device. */
  setFloatingAddresses(portId: string, floatingAddresses: string[], _ctx: CallContext): Promise<PortInfo> {
    return this.serial(async (s) => {
      const port = s.ports[portId];
      if (!port) throw new AgentError('NOT_FOUND', `no port ${portId} on this host`);
      port.floatingAddresses = floatingAddresses;
      this.write(s);
      if (floatingAddresses.length === 0) await unroutePort(this.ns, port.address);
      await applyScript(this.ns, portScript(port));
      await this.applyFloating(s);
      return port;
    });
  }

  setGroupMembers(groups: { groupId: string; addresses: string[] }[], _ctx: CallContext): Promise<{ updated: number }> {
    return this.serial(async (s) => {
      for (const g of groups) {
        const addresses = [...g.addresses].sort();
        await applyScript(this.ns, groupScript(g.groupId, addresses));
        s.groups[g.groupId] = addresses;
      }
      this.write(s);
      return { updated: groups.length };
    });
  }
}
