import { z } from 'zod';
import { contains, isNetworkOrBroadcast, parseSubnet } from './cidr.js';
import { ProjectName } from './identity.js';
import { AddressKind } from './network.js';
import { ClientRequestId } from './operation.js';
import { Id } from './scalars.js';

/**
 * The network mutations' inputs (CONTRACT.md "Networks"), parsed at the edge: a bad CIDR, a subnet
 * larger than a /16 or too small to hold a host, or a gateway outside the subnet is BAD_USER_INPUT and
 * writes nothing. Overlap with the project's other networks needs the write side, so the command checks it.
 */

/** A /16 is the largest subnet one bridge and one dnsmasq range should carry; a /29 the smallest with room for hosts. */
export const LARGEST_PREFIX = 16;
export const SMALLEST_PREFIX = 29;

/** Why `cidr` cannot be a network's subnet (it does not parse, or is larger than a /16 or smaller than a /29); empty when it can. */
export function subnetIssues(cidr: string): string[] {
  const subnet = parseSubnet(cidr);
  if (typeof subnet === 'string') return [subnet];
  const issues: string[] = [];
  if (subnet.prefix < LARGEST_PREFIX) issues.push(`${cidr} is larger than a /${LARGEST_PREFIX}`);
  if (subnet.prefix > SMALLEST_PREFIX) issues.push(`${cidr} is smaller than a /${SMALLEST_PREFIX}: no room for hosts`);
  return issues;
}

export const CreateNetworkInput = z
  .object({
    name: ProjectName,
    cidr: z.string().max(18),
    gateway: z.ipv4().optional(),
    external: z.boolean().default(false),
  })
  .superRefine((input, ctx) => {
    for (const message of subnetIssues(input.cidr)) ctx.addIssue({ code: 'custom', path: ['cidr'], message });
    const subnet = parseSubnet(input.cidr);
    if (typeof subnet === 'string') return;
    if (input.gateway !== undefined && (!contains(subnet, input.gateway) || isNetworkOrBroadcast(subnet, input.gateway))) {
      ctx.addIssue({ code: 'custom', path: ['gateway'], message: `${input.gateway} is not a host address of ${subnet.cidr}` });
    }
  });
export type CreateNetworkInput = z.infer<typeof CreateNetworkInput>;

export const DeleteNetworkInput = z.object({ id: Id });
export type DeleteNetworkInput = z.infer<typeof DeleteNetworkInput>;

export const AllocateIpInput = z.object({
  networkId: Id,
  instanceId: Id.optional(),
  kind: AddressKind,
  clientRequestId: ClientRequestId.optional(),
});
export type AllocateIpInput = z.infer<typeof AllocateIpInput>;

/** An address is named by its IP; `networkId` picks the network when the caller's networks share a subnet's addresses. */
const AddressRef = { address: z.ipv4(), networkId: Id.optional(), clientRequestId: ClientRequestId.optional() };

export const ReleaseIpInput = z.object(AddressRef);
export type ReleaseIpInput = z.infer<typeof ReleaseIpInput>;

export const AssociateIpInput = z.object({ ...AddressRef, instanceId: Id });
export type AssociateIpInput = z.infer<typeof AssociateIpInput>;

export const DisassociateIpInput = z.object(AddressRef);
export type DisassociateIpInput = z.infer<typeof DisassociateIpInput>;
