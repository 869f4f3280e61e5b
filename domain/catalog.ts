import { z } from 'zod';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { idNamespaces, nameBasedUuid } from './nameBasedId.js';
import { Id, Timestamp } from './scalars.js';

/** Flavor and image names are display names: 1-64 characters, no control characters. */
export const CatalogName = z.string().trim().min(1).max(64).regex(/^[^\p{Cc}]+$/u, 'a name has no control characters');

export const Flavor = z.object({
  id: Id,
  name: CatalogName,
  vcpus: z.number().int().positive(),
  memoryMb: z.number().int().positive(),
  diskGb: z.number().int().positive(),
});
export type Flavor = z.infer<typeof Flavor>;

/** Glance's disk formats that a QEMU host can use. */
export const ImageFormat = z.enum(['qcow2', 'raw', 'iso', 'vmdk', 'vdi', 'vhd', 'vhdx']);
export type ImageFormat = z.infer<typeof ImageFormat>;

/** Glance's image statuses: `queued` and `saving` while a snapshot is written, `active` when usable. */
export const ImageStatus = z.enum(['queued', 'saving', 'active', 'killed', 'deleted']);
export type ImageStatus = z.infer<typeof ImageStatus>;

/** A digest, optionally tagged with its algorithm (`sha256:…`): hex of an MD5 up to a SHA-512. */
export const ImageChecksum = z.string().regex(/^([a-z0-9]+:)?[0-9a-fA-F]{32,128}$/, 'a checksum is a hex digest, optionally prefixed by its algorithm and a colon');

export const Image = z.object({
  id: Id,
  name: CatalogName,
  format: ImageFormat,
  sizeBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  checksum: ImageChecksum.optional(),
  status: ImageStatus,
});
export type Image = z.infer<typeof Image>;

export const catalogEvents = {
  FlavorCreated: Flavor.extend({ createdAt: Timestamp }),
  ImageRegistered: Image.extend({ registeredAt: Timestamp }),
} satisfies Record<string, z.ZodType>;
export type CatalogEvent = EventOf<typeof catalogEvents>;
export type FlavorEvent = Extract<CatalogEvent, { type: 'FlavorCreated' }>;
export type ImageEvent = Extract<CatalogEvent, { type: 'ImageRegistered' }>;

/** The admin mutations' inputs (CONTRACT.md `createFlavor`, `registerImage`). */
export const CreateFlavorInput = Flavor.omit({ id: true });
export type CreateFlavorInput = z.infer<typeof CreateFlavorInput>;
export const RegisterImageInput = Image.omit({ id: true, status: true });
export type RegisterImageInput = z.infer<typeof RegisterImageInput>;

/**
 * A flavor's id follows from its name, so names are unique (the second `flavor-<id>` stream is refused by
 * the store) and seeding the default flavors on every start is a no-op after the first.
 */
export const flavorIdFor = (name: string): string => nameBasedUuid(idNamespaces.flavor, name);

const defaultFlavor = (name: string, vcpus: number, memoryMb: number, diskGb: number): Flavor => ({
  id: flavorIdFor(name),
  name,
  vcpus,
  memoryMb,
  diskGb,
});

/** The flavors that exist from the first start (CONTRACT.md), sized as OpenStack's classic defaults. */
export const defaultFlavors: readonly Flavor[] = [
  defaultFlavor('m1.tiny', 1, 512, 1),
  defaultFlavor('m1.small', 1, 2048, 20),
  defaultFlavor('m1.medium', 2, 4096, 40),
  defaultFlavor('m1.large', 4, 8192, 80),
  defaultFlavor('m1.xlarge', 8, 16384, 160),
];

export type FlavorCommand = { type: 'createFlavor'; data: z.infer<typeof catalogEvents.FlavorCreated> };
export type ImageCommand = { type: 'registerImage'; data: z.infer<typeof catalogEvents.ImageRegistered> };

export const flavorDecider: Decider<Flavor | null, FlavorCommand, FlavorEvent> = {
  decide: (command, state) => {
    if (state) throw new StratusError('CONFLICT', `flavor ${state.name} already exists`, { id: state.id });
    return [{ type: 'FlavorCreated', data: command.data }];
  },
  evolve: (_state, { data: { createdAt: _createdAt, ...flavor } }) => flavor,
  initialState: () => null,
};

export const imageDecider: Decider<Image | null, ImageCommand, ImageEvent> = {
  decide: (command, state) => {
    if (state) throw new StratusError('CONFLICT', `image ${state.id} already exists`, { id: state.id });
    return [{ type: 'ImageRegistered', data: command.data }];
  },
  evolve: (_state, { data: { registeredAt: _registeredAt, ...image } }) => image,
  initialState: () => null,
};
