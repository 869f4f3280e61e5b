import { randomUUID } from 'node:crypto';
import type { Decider } from '../../domain/decider.js';
import type { DomainEvent } from '../../domain/events.js';
import { networkDecider, type Network, type NetworkCommand } from '../../domain/network.js';
import { networkIndexDecider } from '../../domain/networkIndex.js';
import { defaultRules, instanceGroupsDecider, securityGroupDecider } from '../../domain/securityGroup.js';

const at = '2026-01-01T00:00:00.000Z';

export const createNetworkCommand = (cidr: string, options: { external?: boolean; gateway?: string } = {}): NetworkCommand => ({
  type: 'create',
  data: {
    networkId: randomUUID(),
    projectId: options.external ? null : randomUUID(),
    name: 'net',
    cidr,
    gateway: options.gateway ?? cidr.replace(/\.0\/\d+$/, '.1'),
    external: options.external ?? false,
    at,
  },
});

export const allocateCommand = (network: Pick<Network, 'projectId'>, kind: 'FIXED' | 'FLOATING' = 'FIXED', addressId = randomUUID()): NetworkCommand => ({
  type: 'allocate',
  data: { addressId, kind, projectId: network.projectId ?? randomUUID(), instanceId: null, operationId: randomUUID(), at },
});

type Run = <S, C, E extends DomainEvent>(decider: Decider<S, C, E>, commands: C[], state?: S) => S;

/** Runs every network, network-index and security-group command once, so every event type they emit is seen. */
export function exerciseNetworkDeciders(run: Run): void {
  const external = run(networkDecider, [createNetworkCommand('198.51.100.0/24', { external: true })])!;
  const addressId = randomUUID();
  run(
    networkDecider,
    [
      allocateCommand(external, 'FLOATING', addressId),
      { type: 'associate', data: { addressId, instanceId: randomUUID(), fixedAddress: '10.0.0.2', operationId: randomUUID(), at } },
      { type: 'disassociate', data: { addressId, operationId: randomUUID(), at } },
      { type: 'release', data: { addressId, operationId: randomUUID(), at } },
      { type: 'delete', data: { at } },
    ],
    external,
  );
  const networkId = randomUUID();
  run(networkIndexDecider, [
    { type: 'register', data: { networkId, cidr: '10.0.0.0/24', name: 'default' } },
    { type: 'unregister', data: { networkId } },
  ]);
  const groupId = randomUUID();
  const [rule] = defaultRules(groupId);
  run(securityGroupDecider, [
    { type: 'create', data: { securityGroupId: groupId, projectId: randomUUID(), name: 'web', at } },
    { type: 'addRule', data: { ...rule!, at } },
    { type: 'removeRule', data: { ruleId: rule!.id, at } },
  ]);
  run(instanceGroupsDecider, [{ type: 'set', data: { instanceId: randomUUID(), projectId: randomUUID(), securityGroupIds: [groupId], operationId: randomUUID(), at } }]);
}
