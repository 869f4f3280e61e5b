import { z } from 'zod';
import { HostKeyFingerprint, HostState } from './host.js';
import { ProjectName, Role } from './identity.js';
import { ClientRequestId } from './operation.js';
import { Id } from './scalars.js';

import { CatalogName } from './catalog.js';

export { CreateFlavorInput, RegisterImageInput } from './catalog.js';

/**
 * The GraphQL mutation inputs of CONTRACT.md, parsed at the edge: a request that fails here gets
 * BAD_USER_INPUT with zod's issues and leaves no event, no workflow, no half-made resource.
 */

/** A resource name, also usable as a hypervisor VM name: 1-63 letters, digits, . _ -, starting alphanumeric. */
export const ResourceName = ProjectName;

/** A host is reached at a DNS name or an IP literal. */
export const HostAddress = z.union([z.ipv4(), z.ipv6(), z.hostname().max(253)]);

export const BootInstanceInput = z.object({
  name: ResourceName,
  flavorId: Id,
  imageId: Id,
  networkId: Id.optional(),
  clientRequestId: ClientRequestId.optional(),
});
export type BootInstanceInput = z.infer<typeof BootInstanceInput>;

/** start, stop, pause, unpause, suspend, resume and delete take only the instance and a client request id. */
export const InstanceActionInput = z.object({ id: Id, clientRequestId: ClientRequestId.optional() });
export type InstanceActionInput = z.infer<typeof InstanceActionInput>;

export const StartInstanceInput = InstanceActionInput;
export const StopInstanceInput = InstanceActionInput;
export const PauseInstanceInput = InstanceActionInput;
export const UnpauseInstanceInput = InstanceActionInput;
export const SuspendInstanceInput = InstanceActionInput;
export const ResumeInstanceInput = InstanceActionInput;
export const DeleteInstanceInput = InstanceActionInput;

export const RebootInstanceInput = InstanceActionInput.extend({ hard: z.boolean().default(false) });
export type RebootInstanceInput = z.infer<typeof RebootInstanceInput>;

export const ResizeInstanceInput = InstanceActionInput.extend({ flavorId: Id });
export type ResizeInstanceInput = z.infer<typeof ResizeInstanceInput>;

/** Without a target the scheduler picks. */
export const MigrateInstanceInput = InstanceActionInput.extend({ targetHostId: Id.optional() });
export type MigrateInstanceInput = z.infer<typeof MigrateInstanceInput>;

/** The new image's name: a catalog name (1-64 characters, no control characters), as createImage takes. */
export const SnapshotInstanceInput = InstanceActionInput.extend({ imageName: CatalogName });
export type SnapshotInstanceInput = z.infer<typeof SnapshotInstanceInput>;

export const RegisterHostInput = z.object({
  name: ResourceName,
  address: HostAddress,
  port: z.number().int().min(1).max(65535),
  hostKeyFingerprint: HostKeyFingerprint,
});
export type RegisterHostInput = z.infer<typeof RegisterHostInput>;

export const SetHostStateInput = z.object({ id: Id, state: HostState });
export type SetHostStateInput = z.infer<typeof SetHostStateInput>;

export const CreateProjectInput = z.object({ name: ProjectName });
export type CreateProjectInput = z.infer<typeof CreateProjectInput>;

export const CreateTokenInput = z.object({ projectId: Id, role: Role });
export type CreateTokenInput = z.infer<typeof CreateTokenInput>;
