import type { Network } from '../domain/network.js';
import * as inputs from '../domain/networkInputs.js';
import * as commands from './commands/index.js';
import { builder, callerOf } from './builder.js';
import { OperationPayload, run } from './mutations.js';
import * as read from './networkReadModel.js';
import { instanceById } from './readModel.js';
import { AddressKindEnum, AddressType, InstanceType, NetworkType } from './types.js';

/** CONTRACT.md "Networks": the Network and Address types, their queries and mutations. */

NetworkType.implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    projectId: t.id({ nullable: true, resolve: (n) => n.projectId }),
    cidr: t.exposeString('cidr'),
    gateway: t.string({ nullable: true, resolve: (n) => n.gateway }),
    external: t.exposeBoolean('external'),
    addresses: t.field({ type: [AddressType], resolve: (n, _a, ctx) => read.addressesOf(ctx.rt, callerOf(ctx), { networkId: n.id }) }),
  }),
});

AddressType.implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    address: t.exposeString('address'),
    networkId: t.exposeID('networkId'),
    kind: t.field({ type: AddressKindEnum, resolve: (a) => a.kind }),
    projectId: t.exposeID('projectId'),
    instance: t.field({ type: InstanceType, nullable: true, resolve: (a, _x, ctx) => (a.instanceId ? instanceById(ctx.rt, callerOf(ctx), a.instanceId) : null) }),
    fixedAddress: t.string({ nullable: true, resolve: (a) => a.fixedAddress }),
  }),
});

builder.queryFields((t) => ({
  networks: t.field({ type: [NetworkType], authScopes: { reader: true }, resolve: (_r, _a, ctx) => read.networksOf(ctx.rt, callerOf(ctx)) }),
  network: t.field({
    type: NetworkType,
    nullable: true,
    authScopes: { reader: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, { id }, ctx) => read.networkById(ctx.rt, callerOf(ctx), String(id)),
  }),
  addresses: t.field({
    type: [AddressType],
    authScopes: { reader: true },
    description: "The caller's project's addresses (admin: every project's), FIXED and FLOATING.",
    resolve: (_r, _a, ctx) => read.addressesOf(ctx.rt, callerOf(ctx)),
  }),
}));

const CreateNetworkInput = builder.inputType('CreateNetworkInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    cidr: t.string({ required: true }),
    gateway: t.string({ required: false }),
    external: t.boolean({ required: false }),
  }),
});
const DeleteNetworkInput = builder.inputType('DeleteNetworkInput', { fields: (t) => ({ id: t.id({ required: true }) }) });
const AllocateIpInput = builder.inputType('AllocateIpInput', {
  fields: (t) => ({
    networkId: t.id({ required: true }),
    instanceId: t.id({ required: false }),
    kind: t.field({ type: AddressKindEnum, required: true }),
    clientRequestId: t.string({ required: false }),
  }),
});
const addressRefFields = (t: Parameters<Parameters<typeof builder.inputType>[1]['fields']>[0]) => ({
  address: t.string({ required: true }),
  networkId: t.id({ required: false, description: 'Which network, when the caller holds the same IP on two.' }),
  clientRequestId: t.string({ required: false }),
});
const ReleaseIpInput = builder.inputType('ReleaseIpInput', { fields: addressRefFields });
const AssociateIpInput = builder.inputType('AssociateIpInput', { fields: (t) => ({ ...addressRefFields(t), instanceId: t.id({ required: true }) }) });
const DisassociateIpInput = builder.inputType('DisassociateIpInput', { fields: addressRefFields });

const networkShape = (n: Network): read.NetworkShape => ({ id: n.id, name: n.name, projectId: n.projectId, cidr: n.cidr, gateway: n.gateway, external: n.external });
const NetworkPayload = (name: string) =>
  builder.objectRef<{ network: Network }>(name).implement({ fields: (t) => ({ network: t.field({ type: NetworkType, resolve: (p) => networkShape(p.network) }) }) });
const CreateNetworkPayload = NetworkPayload('CreateNetworkPayload');
const DeleteNetworkPayload = NetworkPayload('DeleteNetworkPayload');

builder.mutationFields((t) => ({
  createNetwork: t.field({
    type: CreateNetworkPayload,
    // External networks need admin: the command decides, so a member gets FORBIDDEN with a reason.
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateNetworkInput, required: true }) },
    resolve: run(inputs.CreateNetworkInput, commands.createNetwork, ['networks']),
  }),
  deleteNetwork: t.field({
    type: DeleteNetworkPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DeleteNetworkInput, required: true }) },
    resolve: run(inputs.DeleteNetworkInput, commands.deleteNetwork, ['networks']),
  }),
  allocateIp: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: AllocateIpInput, required: true }) },
    resolve: run(inputs.AllocateIpInput, commands.allocateIp),
  }),
  releaseIp: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: ReleaseIpInput, required: true }) },
    resolve: run(inputs.ReleaseIpInput, commands.releaseIp),
  }),
  associateIp: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: AssociateIpInput, required: true }) },
    resolve: run(inputs.AssociateIpInput, commands.associateIp),
  }),
  disassociateIp: t.field({
    type: OperationPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DisassociateIpInput, required: true }) },
    resolve: run(inputs.DisassociateIpInput, commands.disassociateIp),
  }),
}));
