import { StratusError } from '../domain/errors.js';
import { idNamespaces, nameBasedUuid } from '../domain/nameBasedId.js';
import type { AddressKind } from '../domain/network.js';
import type { Runtime } from '../server/runtime.js';
import { readInstance } from './instanceRecords.js';
import { addressesOfInstance, decideOnNetwork, networksVisibleTo } from './ipam.js';
import { failOperation, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';

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

/** The steps of allocateIp, releaseIp, associateIp, disassociateIp, and the address steps of boot and delete. */
export function addressSteps(rt: Runtime) {
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
          await decideOnNetwork(rt, request.networkId, (n) => (n?.addresses[ctx.instanceId]?.kind === 'FLOATING' ? { type: 'disassociate', data: { addressId: ctx.instanceId, operationId: ctx.operationId, at: now() } } : null), {
            key: writeKey(ctx, 'disassociateAddress'),
            metadata: metadataOf(ctx),
          });
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
      });
    },

    /** Delete: FIXED addresses go back to their pools; FLOATING ones are disassociated and stay the project's. */
    async releaseInstanceAddresses(ctx: OperationContext): Promise<void> {
      await runStep(rt, ctx, 'releaseAddresses', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const networks = await networksVisibleTo(rt, instance.projectId);
        for (const network of networks) {
          for (const held of Object.values(network.addresses).filter((a) => a.instanceId === instance.id)) {
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
      });
    },
  };
}
