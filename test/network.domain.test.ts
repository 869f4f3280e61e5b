import { describe, expect, it } from 'vitest';
import { replay } from '../domain/decider.js';
import { StratusError } from '../domain/errors.js';
import { decideNetwork, networkDecider, usableAddresses, type Network, type NetworkCommand, type NetworkEvent } from '../domain/network.js';
import { decideNetworkIndex, networkIndexDecider } from '../domain/networkIndex.js';
import { allocateCommand, createNetworkCommand } from './support/networkFixtures.js';

const apply = (state: Network | null, command: NetworkCommand): Network | null => decideNetwork(command, state).reduce(networkDecider.evolve, state);

const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'none';
  } catch (e) {
    return e instanceof StratusError ? e.code : String(e);
  }
};

describe('IPAM decider', () => {
  it('never hands out the network, broadcast or gateway address, and a /28 holds 13', () => {
    let network = apply(null, createNetworkCommand('192.168.1.0/28', { gateway: '192.168.1.5' }))!;
    const taken: string[] = [];
    for (let i = 0; i < 13; i++) {
      const command = allocateCommand(network);
      network = apply(network, command)!;
      taken.push(network.addresses[(command.data as { addressId: string }).addressId]!.address);
    }
    expect(taken).not.toContain('192.168.1.0');
    expect(taken).not.toContain('192.168.1.5');
    expect(taken).not.toContain('192.168.1.15');
    expect(new Set(taken).size).toBe(13);
    expect(codeOf(() => decideNetwork(allocateCommand(network), network))).toBe('NO_FREE_ADDRESS');
  });

  it('a /24 holds exactly 253 usable addresses: all but the network, broadcast and gateway addresses', () => {
    let network = apply(null, createNetworkCommand('10.20.30.0/24'))!;
    expect(usableAddresses(network)).toBe(253);
    const taken: string[] = [];
    // Allocate until refused; the bound only stops a broken decider from looping forever.
    for (let command = allocateCommand(network); taken.length <= 256 && codeOf(() => decideNetwork(command, network)) === 'none'; command = allocateCommand(network)) {
      network = apply(network, command)!;
      taken.push(network.addresses[(command.data as { addressId: string }).addressId]!.address);
    }
    expect(codeOf(() => decideNetwork(allocateCommand(network), network))).toBe('NO_FREE_ADDRESS');
    expect(taken).toHaveLength(253);
    expect(new Set(taken).size).toBe(253);
    const expected = Array.from({ length: 256 }, (_, i) => `10.20.30.${i}`).filter((ip) => !['10.20.30.0', '10.20.30.1', '10.20.30.255'].includes(ip));
    expect([...taken].sort()).toEqual(expected.sort());
  });

  it('a released address is reused only after every fresh one, oldest release first', () => {
    let network = apply(null, createNetworkCommand('10.0.0.0/29'))!;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const command = allocateCommand(network);
      ids.push((command.data as { addressId: string }).addressId);
      network = apply(network, command)!;
    }
    const addressOf = (id: string) => network.addresses[id]!.address;
    const [a, b] = [addressOf(ids[0]!), addressOf(ids[1]!)];
    for (const id of [ids[1]!, ids[0]!]) network = apply(network, { type: 'release', data: { addressId: id, operationId: id, at: network.createdAt } })!;
    const next: string[] = [];
    for (let i = 0; i < 3; i++) {
      const command = allocateCommand(network);
      network = apply(network, command)!;
      next.push(addressOf((command.data as { addressId: string }).addressId));
    }
    // .2 .3 .4 were taken; .5 and .6 are fresh; then .3 (released first), then .2.
    expect([a, b]).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(next).toEqual(['10.0.0.5', '10.0.0.6', '10.0.0.3']);
  });

  it('a retried allocation decides nothing, and replaying the stream folds the same state', () => {
    const created = createNetworkCommand('10.1.0.0/24');
    const events: NetworkEvent[] = decideNetwork(created, null);
    let network = replay(networkDecider, events)!;
    const command = allocateCommand(network);
    const allocated = decideNetwork(command, network);
    events.push(...allocated);
    network = allocated.reduce(networkDecider.evolve, network)!;
    expect(decideNetwork(command, network)).toEqual([]);
    expect(replay(networkDecider, events)).toEqual(network);
  });

  it('floating addresses only from external networks, fixed ones only from project networks', () => {
    const project = apply(null, createNetworkCommand('10.2.0.0/24'))!;
    const external = apply(null, createNetworkCommand('203.0.113.0/24', { external: true }))!;
    expect(codeOf(() => decideNetwork(allocateCommand(project, 'FLOATING'), project))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => decideNetwork(allocateCommand(external, 'FIXED'), external))).toBe('BAD_USER_INPUT');
  });

  it('a network with an address in use cannot be deleted', () => {
    let network = apply(null, createNetworkCommand('10.3.0.0/24'))!;
    network = apply(network, allocateCommand(network))!;
    expect(codeOf(() => decideNetwork({ type: 'delete', data: { at: network.createdAt } }, network))).toBe('CONFLICT');
  });

  it("the project's network index refuses an overlapping subnet", () => {
    const index = decideNetworkIndex({ type: 'register', data: { networkId: crypto.randomUUID(), cidr: '10.0.0.0/16', name: 'a' } }, networkIndexDecider.initialState()).reduce(
      networkIndexDecider.evolve,
      networkIndexDecider.initialState(),
    );
    expect(codeOf(() => decideNetworkIndex({ type: 'register', data: { networkId: crypto.randomUUID(), cidr: '10.0.200.0/24', name: 'b' } }, index))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => decideNetworkIndex({ type: 'register', data: { networkId: crypto.randomUUID(), cidr: '10.1.0.0/24', name: 'c' } }, index))).toBe('none');
  });
});
