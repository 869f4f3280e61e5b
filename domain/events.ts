import type { z } from 'zod';
import { catalogEvents, type CatalogEvent } from './catalog.js';
import { hostEvents, type HostEvent } from './host.js';
import { identityEvents, type IdentityEvent } from './identity.js';
import { instanceEvents, type InstanceEvent } from './instance.js';
import { operationEvents, type OperationEvent } from './operation.js';
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
  ...volumeEvents,
  ...imageEvents,
} satisfies Record<string, z.ZodType>;

export type EventType = keyof typeof eventRegistry;
export type DomainEvent = InstanceEvent | HostEvent | OperationEvent | CatalogEvent | IdentityEvent | VolumeEvent | ImageLifecycleEvent;

export const instanceStream = (id: string) => `instance-${id}`;
export const hostStream = (id: string) => `host-${id}`;
export const operationStream = (id: string) => `operation-${id}`;
export const flavorStream = (id: string) => `flavor-${id}`;
export const imageStream = (id: string) => `image-${id}`;
export const projectStream = (id: string) => `project-${id}`;
export const tokenStream = (id: string) => `token-${id}`;
export const volumeStream = (id: string) => `volume-${id}`;

/** The resource kind and id a stream id names, e.g. `instance-<uuid>` → `{ kind: 'instance', id }`. */
export function parseStreamId(streamId: string): { kind: string; id: string } | undefined {
  const dash = streamId.indexOf('-');
  return dash > 0 ? { kind: streamId.slice(0, dash), id: streamId.slice(dash + 1) } : undefined;
}
