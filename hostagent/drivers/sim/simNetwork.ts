import { AgentError, type CallContext } from '../../driver.js';
import { groupsMissingFrom, tapNameOf, type NetworkDataPlane, type PluggedPort, type PortInfo, type PortSpec } from '../../network.js';
import type { SimFaultInjector } from './simFaults.js';
import type { SimStore } from './simStore.js';

/**
 * The sim's data plane: ports are records in the sim's state file, committed with the call's key like
 * every sim change, so a test (or the controller) can see what a real host would have plumbed.
 */
export class SimNetwork implements NetworkDataPlane {
  constructor(
    private readonly store: SimStore,
    private readonly faults?: SimFaultInjector,
  ) {}

  private get ports(): Record<string, PortInfo> {
    return this.store.state.ports;
  }

  private async once<T>(ctx: CallContext, run: () => T): Promise<T> {
    const replay = this.store.appliedResult(ctx.idempotencyKey);
    if (replay) return replay.result as T;
    return this.store.commit(ctx.idempotencyKey, structuredClone(run()));
  }

  private port(portId: string): PortInfo {
    const port = this.ports[portId];
    if (!port) throw new AgentError('NOT_FOUND', `no port ${portId} on this host`);
    return port;
  }

  async listPorts() {
    return { ports: Object.values(this.ports).map((p) => structuredClone(p)), groups: structuredClone(this.store.state.groups) };
  }

  /** Subject to the sim's faults (latency, failures; the name a pattern sees is the first group's id), so a test can hold a fan-out round in flight. */
  async setGroupMembers(groups: { groupId: string; addresses: string[] }[], ctx: CallContext) {
    if (!this.store.appliedResult(ctx.idempotencyKey)) await this.faults?.apply('setGroupMembers', groups[0]?.groupId ?? '', ctx);
    return this.once(ctx, () => {
      for (const g of groups) this.store.state.groups[g.groupId] = [...g.addresses].sort();
      return { updated: groups.length };
    });
  }

  plugPort(spec: PortSpec, ctx: CallContext): Promise<PluggedPort> {
    return this.once(ctx, () => {
      const existing = this.ports[spec.portId];
      if (existing && (existing.mac !== spec.mac || existing.address !== spec.address)) {
        throw new AgentError('ALREADY_EXISTS', `port ${spec.portId} is plugged with another MAC or address`);
      }
      const port: PortInfo = { ...spec, tap: tapNameOf(spec.portId), createdAt: existing?.createdAt ?? new Date().toISOString() };
      this.ports[spec.portId] = port;
      return { ...port, groupsMissing: groupsMissingFrom(spec.rules, this.store.state.groups) };
    });
  }

  unplugPort(portId: string, ctx: CallContext) {
    return this.once(ctx, () => {
      const existed = portId in this.ports;
      delete this.ports[portId];
      return { unplugged: existed };
    });
  }

  setPortRules(ports: { portId: string; rules: PortInfo['rules'] }[], ctx: CallContext) {
    return this.once(ctx, () => {
      let updated = 0;
      // Ports that left this host since the controller looked are skipped: their new host gets its own call.
      for (const { portId, rules } of ports) {
        const port = this.ports[portId];
        if (port) {
          port.rules = rules;
          updated++;
        }
      }
      return { updated };
    });
  }

  setFloatingAddresses(portId: string, floatingAddresses: string[], ctx: CallContext) {
    return this.once(ctx, () => {
      const port = this.port(portId);
      port.floatingAddresses = floatingAddresses;
      return port;
    });
  }
}
