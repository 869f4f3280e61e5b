import { StratusError } from '../domain/errors.js';
import { idNamespaces, nameBasedUuid } from '../domain/nameBasedId.js';
import type { AddressKind } from '../domain/network.js';
import type { Runtime } from '../server/runtime.js';
import type { Instance } from '../domain/instance.js';
import { callAgent } from './agentCalls.js';
import { readInstance } from './instanceRecords.js';
import { addressesOfInstance, decideOnNetwork, networksVisibleTo, requireNetwork } from './ipam.js';
import { agentKey, failOperation, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';
import { announceMembershipChange } from './membership.js';
import { forgetPort, indexPort } from './portIndex.js';
import { groupsOf, portSpecOf, pushGroupMembers, remoteGroupsOf, unlessUnsupported } from './ports.js';

const now = () => new Date().toISOString();

/**
 * What an address operation's workflow carries besides its context. For these operations the context's
 * `instanceId` is the operation's resource, the address id (OperationContext predates addresses); the
 * instance an address is for, if any, is `instanceId` here.
 */
export interface AddressRequest {
  networkId: string;
  /** ALLOCATE_IP only. */
  kind?: AddressKind;
  /** The project that will hold the address. */
  projectId: string;
  instanceId?: string;
}

/** The FIXED address a boot allocates: named after the boot, so its undo and a retry find the same one. */
export const bootAddressId = (operationId: string): string => nameBasedUuid(idNamespaces.address, `${operationId}:fixed`);

/** The instance's FIXED address a floating one NATs to: the first on its own network. */
async function fixedAddressOf(rt: Runtime, instanceId: string, projectId: string): Promise<string> {
  const instance = await readInstance(rt, instanceId);
  if (instance.projectId !== projectId || instance.state === 'DELETED') {
    throw new StratusError('NOT_FOUND', `instance ${instanceId} not found`, { id: instanceId });
  }
  const fixed = (await addressesOfInstance(rt, instance)).filter((a) => a.kind === 'FIXED');
  const own = fixed.find((a) => a.networkId === instance.networkId) ?? fixed[0];
  if (!own) throw new StratusError('CONFLICT', `instance ${instanceId} has no fixed address to associate with`, { id: instanceId });
  return own.address;
}

/**
 * Tells the instance's host which floating addresses NAT to its FIXED address (the port is that
 * address's id). An instance not placed on a host yet has nothing to tell.
 */
async function pushFloating(rt: Runtime, ctx: OperationContext, instance: Instance, step: string): Promise<void> {
  if (!instance.hostId) return;
  const addresses = await addressesOfInstance(rt, instance);
  for (const fixed of addresses.filter((a) => a.kind === 'FIXED')) {
    const floating = addresses.filter((a) => a.kind === 'FLOATING' && a.fixedAddress === fixed.address).map((a) => a.address);
    const call = callAgent(rt, instance.hostId, 'setFloatingAddresses', { portId: fixed.id, floatingAddresses: floating }, { idempotencyKey: agentKey(ctx, `${step}:${fixed.id}`) });
    await unlessUnsupported(call).catch((e: unknown) => {
      // A port the host never had (an instance booted before networking) has no NAT to change.
      if ((e as { code?: string }).code !== 'NOT_FOUND') throw e;
    });
  }
}

/** The instance's addresses are gone: the hosts whose ports name its groups learn it left them, from the project's fan-out. */
async function leftGroupsOn(rt: Runtime, instance: Instance): Promise<void> {
  await announceMembershipChange(rt, instance.projectId, await groupsOf(rt, instance));
}

/** The steps of allocateIp, releaseIp, associateIp, disassociateIp, and the address steps of boot and delete. */
export function addressSteps(rt: Runtime) {
  const leftGroups = (instance: Instance) => leftGroupsOn(rt, instance);
  return {
    /** IPAM: take the next free address of the network, appended with the network's version expected. */
    async allocateAddress(ctx: OperationContext, request: AddressRequest & { last: boolean }): Promise<{ address: string }> {
      return runStep(
        rt,
        ctx,
        'allocateAddress',
        async () => {
          const addressId = ctx.instanceId;
          const { state } = await decideOnNetwork(
            rt,
            request.networkId,
            () => ({
              type: 'allocate',
              data: {
                addressId,
                kind: request.kind ?? 'FIXED',
                projectId: request.projectId,
                // A floating address is bound by its association step, not at allocation.
                instanceId: request.kind === 'FLOATING' ? null : (request.instanceId ?? null),
                operationId: ctx.operationId,
                at: now(),
              },
            }),
            { key: writeKey(ctx, 'allocateAddress'), metadata: metadataOf(ctx) },
          );
          return { address: state!.addresses[addressId]!.address };
        },
        { succeedsOperation: request.last },
      );
    },

    async releaseAddress(ctx: OperationContext, request: AddressRequest): Promise<void> {
      await runStep(
        rt,
        ctx,
        'releaseAddress',
        async () => {
          await decideOnNetwork(rt, request.networkId, () => ({ type: 'release', data: { addressId: ctx.instanceId, operationId: ctx.operationId, at: now() } }), {
            key: writeKey(ctx, 'releaseAddress'),
            metadata: metadataOf(ctx),
          });
        },
        { succeedsOperation: true },
      );
    },

    /** Points a FLOATING address at the instance's FIXED one. */
    async associateAddress(ctx: OperationContext, request: AddressRequest & { instanceId: string }): Promise<void> {
      await runStep(
        rt,
        ctx,
        'associateAddress',
        async () => {
          const fixedAddress = await fixedAddressOf(rt, request.instanceId, request.projectId);
          await decideOnNetwork(
            rt,
            request.networkId,
            () => ({ type: 'associate', data: { addressId: ctx.instanceId, instanceId: request.instanceId, fixedAddress, operationId: ctx.operationId, at: now() } }),
            { key: writeKey(ctx, 'associateAddress'), metadata: metadataOf(ctx) },
          );
          await pushFloating(rt, ctx, await readInstance(rt, request.instanceId), 'associateAddress');
        },
        { succeedsOperation: true },
      );
    },

    async disassociateAddress(ctx: OperationContext, request: AddressRequest & { last: boolean }): Promise<void> {
      await runStep(
        rt,
        ctx,
        'disassociateAddress',
        async () => {
          const boundTo = (await requireNetwork(rt, request.networkId)).addresses[ctx.instanceId]?.instanceId;
          await decideOnNetwork(rt, request.networkId, (n) => (n?.addresses[ctx.instanceId]?.kind === 'FLOATING' ? { type: 'disassociate', data: { addressId: ctx.instanceId, operationId: ctx.operationId, at: now() } } : null), {
            key: writeKey(ctx, 'disassociateAddress'),
            metadata: metadataOf(ctx),
          });
          if (boundTo) await pushFloating(rt, ctx, await readInstance(rt, boundTo), 'disassociateAddress');
        },
        { succeedsOperation: request.last },
      );
    },

    /** An address operation failed for good: its steps and the operation record the error. */
    async recordAddressFailed(ctx: OperationContext, failure: { code: string; message: string }): Promise<void> {
      await failOperation(rt, ctx, failure);
    },

    /** Boot: a FIXED address on the instance's network, before its VM is defined (the VM's NIC needs it). */
    async allocateFixedAddress(ctx: OperationContext): Promise<{ address: string | null }> {
      return runStep(rt, ctx, 'allocateAddress', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        if (!instance.networkId) return { address: null };
        const addressId = bootAddressId(ctx.operationId);
        const { state } = await decideOnNetwork(
          rt,
          instance.networkId,
          () => ({ type: 'allocate', data: { addressId, kind: 'FIXED', projectId: instance.projectId, instanceId: instance.id, operationId: ctx.operationId, at: now() } }),
          { key: writeKey(ctx, 'allocateAddress'), metadata: metadataOf(ctx) },
        );
        return { address: state!.addresses[addressId]!.address };
      });
    },

    /** Boot's undo: the address goes back to the pool (invariant 8). Nothing allocated: nothing to do. */
    async releaseFixedAddress(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'releaseAddress', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        if (!instance.networkId) return;
        await decideOnNetwork(
          rt,
          instance.networkId,
          (n) => (n && !n.deleted ? { type: 'release', data: { addressId: bootAddressId(ctx.operationId), operationId: ctx.operationId, at: now() } } : null),
          { key: writeKey(ctx, 'releaseAddress'), metadata: metadataOf(ctx) },
        );
        await leftGroups(instance);
      });
    },

    /** Boot: the NIC on the chosen host (tap, MAC from the port, rules of the instance's groups), before the VM that uses it. */
    async plugBootPort(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'plugPort', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        if (!instance.networkId || !instance.hostId) return;
        const network = await requireNetwork(rt, instance.networkId);
        const address = network.addresses[bootAddressId(ctx.operationId)];
        if (!address) throw new StratusError('INTERNAL', `boot ${ctx.operationId} has no address to plug`);
        const port = await portSpecOf(rt, instance, address, network);
        await indexPort(rt, { portId: port.portId, hostId: instance.hostId, projectId: instance.projectId, rules: port.rules });
        const plugged = await unlessUnsupported(callAgent(rt, instance.hostId, 'plugPort', { port }, { idempotencyKey: agentKey(ctx, 'plugPort') }));
        // Its own host needs a member list for each group its rules name before the boot goes on, so
        // the instance's filtering holds when it runs: the lists it lacks are set here. A list the host
        // already holds (another port there names the group) is kept current by the project's fan-out,
        // like every other host's: pushing it here too would make each boot read and send its whole
        // project's membership, and boots slower as the project grows. The groups the instance joined
        // go to the fan-out, after this step, not in it.
        const missing = plugged?.groupsMissing ?? remoteGroupsOf(port.rules);
        await pushGroupMembers(rt, instance.projectId, missing, [instance.hostId], agentKey(ctx, 'plugPort:members'), await groupsOf(rt, instance));
      });
    },

    /** Boot's undo: the NIC goes from the host (no tap, rule or DHCP entry left behind). */
    async unplugBootPort(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'unplugPort', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        if (!instance.hostId) return;
        await unlessUnsupported(callAgent(rt, instance.hostId, 'unplugPort', { portId: bootAddressId(ctx.operationId) }, { idempotencyKey: agentKey(ctx, 'unplugPort') }));
        await forgetPort(rt, bootAddressId(ctx.operationId), instance.hostId);
      });
    },

    /** Delete: FIXED addresses go back to their pools; FLOATING ones are disassociated and stay the project's. */
    async releaseInstanceAddresses(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'releaseAddresses', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const networks = await networksVisibleTo(rt, instance.projectId);
        for (const network of networks) {
          for (const held of Object.values(network.addresses).filter((a) => a.instanceId === instance.id)) {
            if (held.kind === 'FIXED' && instance.hostId) {
              await unlessUnsupported(callAgent(rt, instance.hostId, 'unplugPort', { portId: held.id }, { idempotencyKey: agentKey(ctx, `unplugPort:${held.id}`) }));
              await forgetPort(rt, held.id, instance.hostId);
            }
            await decideOnNetwork(
              rt,
              network.id,
              () =>
                held.kind === 'FIXED'
                  ? { type: 'release', data: { addressId: held.id, operationId: ctx.operationId, at: now() } }
                  : { type: 'disassociate', data: { addressId: held.id, operationId: ctx.operationId, at: now() } },
              { key: writeKey(ctx, 'releaseAddresses', held.id), metadata: metadataOf(ctx) },
            );
          }
        }
        await leftGroups(instance);
      });
    },
  };
}
