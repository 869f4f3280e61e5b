import type { z } from 'zod';
import { catalogEvents, type CatalogEvent } from './catalog.js';
import { hostEvents, type HostEvent } from './host.js';
import { identityEvents, type IdentityEvent } from './identity.js';
import { instanceEvents, type InstanceEvent } from './instance.js';
import { networkEvents, type NetworkEvent } from './network.js';
import { networkIndexEvents, type NetworkIndexEvent } from './networkIndex.js';
import { securityGroupEvents, type InstanceGroupsEvent, type SecurityGroupEvent } from './securityGroup.js';
import { operationEvents, type OperationEvent } from './operation.js';
import { priceSheetEvents, type PriceSheetEvent } from './priceSheet.js';
import { usageEvents, type UsageEvent } from './usage.js';
import { volumeEvents, type VolumeEvent } from './volume.js';
import { imageEvents, type ImageLifecycleEvent } from './image.js';

/**
 * Every domain event type and the schema of its data. The event store validates each append against
 * it, so an event that is not listed here, or whose data does not match, is never stored.
 */
export const eventRegistry = {
  ...instanceEvents,
  ...hostEvents,
  ...operationEvents,
  ...catalogEvents,
  ...identityEvents,
  ...usageEvents,
  ...priceSheetEvents,
  ...volumeEvents,
  ...imageEvents,
  ...networkEvents,
  ...networkIndexEvents,
  ...securityGroupEvents,
} satisfies Record<string, z.ZodType>;

export type EventType = keyof typeof eventRegistry;
export type DomainEvent =
  | InstanceEvent
  | HostEvent
  | OperationEvent
  | CatalogEvent
  | IdentityEvent
  | UsageEvent
  | PriceSheetEvent
  | VolumeEvent
  | ImageLifecycleEvent
  | NetworkEvent
  | NetworkIndexEvent
  | SecurityGroupEvent
  | InstanceGroupsEvent;

export const instanceStream = (id: string) => `instance-${id}`;
export const hostStream = (id: string) => `host-${id}`;
export const operationStream = (id: string) => `operation-${id}`;
export const flavorStream = (id: string) => `flavor-${id}`;
export const imageStream = (id: string) => `image-${id}`;
export const projectStream = (id: string) => `project-${id}`;
export const tokenStream = (id: string) => `token-${id}`;
export const volumeStream = (id: string) => `volume-${id}`;
export const networkStream = (id: string) => `network-${id}`;
/** A project's networks (or the external scope's): see domain/networkIndex.ts. */
export const networkIndexStream = (scopeId: string) => `networks-${scopeId}`;
export const securityGroupStream = (id: string) => `securitygroup-${id}`;
/** Which security groups an instance is in (domain/securityGroup.ts). */
export const instanceGroupsStream = (instanceId: string) => `instancegroups-${instanceId}`;

/** The resource kind and id a stream id names, e.g. `instance-<uuid>` → `{ kind: 'instance', id }`. */
export function parseStreamId(streamId: string): { kind: string; id: string } | undefined {
  const dash = streamId.indexOf('-');
  return dash > 0 ? { kind: streamId.slice(0, dash), id: streamId.slice(dash + 1) } : undefined;
}
