import { z } from 'zod';
import { CatalogName, catalogEvents } from './catalog.js';
import type { EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { canMutate, canRead, isAdmin, type Caller } from './identity.js';
import { Id, Timestamp } from './scalars.js';

/**
 * Images (Glance) that users upload: an `image-<id>` stream that starts with ImageCreated (QUEUED), goes
 * SAVING while its bytes stream in, and ends ACTIVE with its sha256 or ERROR with the reason. The bytes
 * live in the controller's content-addressed store (`<data dir>/images/sha256/<hex>`). Images registered
 * by an admin with `registerImage` (the catalog's ImageRegistered) fold into the same shape, PUBLIC.
 */

export const UploadFormat = z.enum(['qcow2', 'raw']);
export type UploadFormat = z.infer<typeof UploadFormat>;
export const Visibility = z.enum(['PUBLIC', 'PRIVATE']);
export type Visibility = z.infer<typeof Visibility>;
export const StoredImageStatus = z.enum(['QUEUED', 'SAVING', 'ACTIVE', 'ERROR', 'DELETED']);
export type StoredImageStatus = z.infer<typeof StoredImageStatus>;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const imageEvents = {
  ImageCreated: z.object({
    id: Id,
    name: CatalogName,
    format: UploadFormat,
    visibility: Visibility,
    /** The owning project; PUBLIC images made by an admin keep the admin's project for the record. */
    projectId: Id,
    sourceInstanceId: Id.nullable(),
    createdAt: Timestamp,
  }),
  /** One upload holds the image (SAVING); a second concurrent one meets the stream version and is refused. */
  ImageUploadStarted: z.object({ uploadId: Id, at: Timestamp }),
  ImageUploaded: z.object({ uploadId: Id, checksum: Sha256, sizeBytes: z.number().int().nonnegative(), at: Timestamp }),
  /** The bytes were not an image of the claimed format: ERROR, and nothing of them is kept. */
  ImageUploadRejected: z.object({ uploadId: Id, reason: z.string().min(1), at: Timestamp }),
  /** The client went away half way: back to QUEUED for another try, nothing of it is kept. */
  ImageUploadAbandoned: z.object({ uploadId: Id, reason: z.string(), at: Timestamp }),
  /**
   * An instance snapshot that did not make it into the store (snapshotInstance failed and undid its
   * steps): ERROR with the reason, from QUEUED or SAVING, and nothing of its bytes is kept.
   */
  ImageFailed: z.object({ operationId: Id, reason: z.string().min(1), at: Timestamp }),
  ImageDeleted: z.object({ at: Timestamp }),
} satisfies Record<string, z.ZodType>;
export type ImageLifecycleEvent = EventOf<typeof imageEvents>;
type RegisteredEvent = { type: 'ImageRegistered'; data: z.infer<typeof catalogEvents.ImageRegistered> };
export type AnyImageEvent = ImageLifecycleEvent | RegisteredEvent;

export const StoredImage = z.object({
  id: Id,
  name: z.string(),
  format: z.string(),
  status: z.string(),
  visibility: Visibility,
  projectId: Id.nullable(),
  checksum: z.string().nullable(),
  sizeBytes: z.number(),
  sourceInstanceId: Id.nullable(),
  errorReason: z.string().nullable(),
  uploadId: Id.nullable(),
  createdAt: Timestamp,
  version: z.number().int(),
});
export type StoredImage = z.infer<typeof StoredImage>;

/**
 * The contract's image status (CONTRACT.md: QUEUED SAVING ACTIVE ERROR DELETED) of a status as stored:
 * registered images keep Glance's lowercase words in their ImageRegistered events (`active`, and
 * `killed` for Glance's failed upload), which the read side turns into the contract's.
 */
export function contractImageStatus(status: string): StoredImageStatus | string {
  const upper = status === 'killed' ? 'ERROR' : status.toUpperCase();
  return StoredImageStatus.safeParse(upper).success ? upper : status;
}

export function evolveImage(state: StoredImage | null, event: AnyImageEvent): StoredImage | null {
  if (event.type === 'ImageRegistered') {
    const d = event.data;
    return {
      id: d.id, name: d.name, format: d.format, status: contractImageStatus(d.status), visibility: 'PUBLIC', projectId: null, checksum: d.checksum ?? null,
      sizeBytes: d.sizeBytes, sourceInstanceId: null, errorReason: null, uploadId: null, createdAt: d.registeredAt, version: 1,
    };
  }
  if (event.type === 'ImageCreated') {
    const d = event.data;
    return {
      id: d.id, name: d.name, format: d.format, status: 'QUEUED', visibility: d.visibility, projectId: d.projectId, checksum: null,
      sizeBytes: 0, sourceInstanceId: d.sourceInstanceId, errorReason: null, uploadId: null, createdAt: d.createdAt, version: 1,
    };
  }
  if (!state) return state;
  const next = { ...state, version: state.version + 1 };
  switch (event.type) {
    case 'ImageUploadStarted':
      return { ...next, status: 'SAVING', uploadId: event.data.uploadId };
    case 'ImageUploaded':
      return { ...next, status: 'ACTIVE', checksum: event.data.checksum, sizeBytes: event.data.sizeBytes, uploadId: null, errorReason: null };
    case 'ImageUploadRejected':
      return { ...next, status: 'ERROR', errorReason: event.data.reason, uploadId: null };
    case 'ImageUploadAbandoned':
      return { ...next, status: 'QUEUED', uploadId: null };
    case 'ImageFailed':
      return { ...next, status: 'ERROR', errorReason: event.data.reason, uploadId: null };
    case 'ImageDeleted':
      return { ...next, status: 'DELETED' };
  }
}

export type ImageCommand =
  | { type: 'create'; data: z.infer<typeof imageEvents.ImageCreated> }
  | { type: 'startUpload'; data: z.infer<typeof imageEvents.ImageUploadStarted> }
  | { type: 'finishUpload'; data: z.infer<typeof imageEvents.ImageUploaded> }
  | { type: 'rejectUpload'; data: z.infer<typeof imageEvents.ImageUploadRejected> }
  | { type: 'abandonUpload'; data: z.infer<typeof imageEvents.ImageUploadAbandoned> }
  | { type: 'fail'; data: z.infer<typeof imageEvents.ImageFailed> }
  | { type: 'delete'; data: z.infer<typeof imageEvents.ImageDeleted> };

const conflict = (image: StoredImage, what: string) =>
  new StratusError('CONFLICT', `image ${image.id} is ${image.status}: cannot ${what}`, { id: image.id, status: image.status });

/** The upload's rules: one upload at a time and only into a QUEUED image; its outcome only from the upload that holds it. */
export function decideImage(command: ImageCommand, state: StoredImage | null): ImageLifecycleEvent[] {
  if (command.type === 'create') {
    if (state) throw new StratusError('CONFLICT', `image ${state.id} already exists`, { id: state.id });
    return [{ type: 'ImageCreated', data: command.data }];
  }
  if (!state || state.status === 'DELETED') throw new StratusError('NOT_FOUND', 'image not found');
  switch (command.type) {
    case 'startUpload':
      if (state.uploadId === command.data.uploadId) return [];
      // A failed instance snapshot is taken again by its operation's retry (retryOperation).
      if (state.status !== 'QUEUED' && !(state.status === 'ERROR' && state.sourceInstanceId !== null)) {
        throw conflict(state, 'take an upload (only a QUEUED image does)');
      }
      return [{ type: 'ImageUploadStarted', data: command.data }];
    case 'fail':
      if (state.status === 'ERROR') return [];
      if (state.status !== 'QUEUED' && state.status !== 'SAVING') throw conflict(state, 'fail (only a QUEUED or SAVING image does)');
      return [{ type: 'ImageFailed', data: command.data }];
    case 'finishUpload':
    case 'rejectUpload':
    case 'abandonUpload': {
      if (state.uploadId !== command.data.uploadId) throw conflict(state, 'record an upload it is not taking');
      const type = command.type === 'finishUpload' ? 'ImageUploaded' : command.type === 'rejectUpload' ? 'ImageUploadRejected' : 'ImageUploadAbandoned';
      return [{ type, data: command.data } as ImageLifecycleEvent];
    }
    case 'delete':
      if (state.status === 'SAVING') throw conflict(state, 'be deleted while its upload runs');
      return [{ type: 'ImageDeleted', data: command.data }];
  }
}

export const imageFold = { evolve: evolveImage, initialState: (): StoredImage | null => null };
export const imageLifecycleDecider = { decide: decideImage, ...imageFold };

/** Usable to boot from: ACTIVE (a registered image's `active` included). */
export const isBootable = (image: StoredImage): boolean => contractImageStatus(image.status) === 'ACTIVE';

/** PUBLIC images are everyone's to read; a PRIVATE one exists only for its project (and admins). */
export const canSeeImage = (caller: Caller, image: Pick<StoredImage, 'visibility' | 'projectId' | 'status'>): boolean =>
  image.status !== 'DELETED' && (image.visibility === 'PUBLIC' || isAdmin(caller) || (image.projectId !== null && canRead(caller, image.projectId)));

/** Only its project's members change a PRIVATE image; PUBLIC ones are the admins'. */
export function requireImageWritable(caller: Caller, image: StoredImage | null, id: string): StoredImage {
  if (!image || !canSeeImage(caller, image)) throw new StratusError('NOT_FOUND', `image ${id} not found`, { id });
  const owner = image.visibility === 'PUBLIC' || image.projectId === null ? isAdmin(caller) : canMutate(caller, image.projectId);
  if (!owner) throw new StratusError('FORBIDDEN', `image ${id} is not yours to change`, { id });
  return image;
}

export const CreateImageInput = z.object({ name: CatalogName, format: UploadFormat, visibility: Visibility.default('PRIVATE') });
export type CreateImageInput = z.infer<typeof CreateImageInput>;
export const DeleteImageInput = z.object({ id: Id });
export type DeleteImageInput = z.infer<typeof DeleteImageInput>;
