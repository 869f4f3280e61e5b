import { randomUUID } from 'node:crypto';
import { StratusError } from '../../domain/errors.js';
import { imageStream } from '../../domain/events.js';
import { isAdmin, type Caller } from '../../domain/identity.js';
import { decideImage, evolveImage, imageFold, requireImageWritable, type CreateImageInput, type DeleteImageInput, type StoredImage } from '../../domain/image.js';
import { readFolded } from '../../activities/events.js';
import type { Runtime } from '../../server/runtime.js';
import { removeBlobUnlessUsed } from '../../server/imageStore.js';
import { requireWriter } from './access.js';
import { appendNew, commandMetadata, now } from './operations.js';

/** Glance's image-create: the record first (QUEUED), the bytes later with `PUT <uploadUrl>`. */
export async function createImage(rt: Runtime, caller: Caller, input: CreateImageInput): Promise<{ image: StoredImage; uploadUrl: string }> {
  requireWriter(caller);
  // Glance: publicizing an image is an admin's call.
  if (input.visibility === 'PUBLIC' && !isAdmin(caller)) throw new StratusError('FORBIDDEN', 'only an admin makes a PUBLIC image');
  const id = randomUUID();
  const events = decideImage(
    { type: 'create', data: { id, name: input.name, format: input.format, visibility: input.visibility, projectId: caller.projectId, sourceInstanceId: null, createdAt: now() } },
    null,
  );
  await appendNew(rt, imageStream(id), events, 'noStream', commandMetadata(caller));
  return { image: events.reduce(evolveImage, null)!, uploadUrl: `/images/${id}/file` };
}

/**
 * Deletes the image and, unless another image holds the same bytes (the store is content-addressed),
 * its file. An upload still running is a CONFLICT: its bytes would land after the delete.
 */
export async function deleteImage(rt: Runtime, caller: Caller, input: DeleteImageInput): Promise<{ image: StoredImage }> {
  requireWriter(caller);
  const { state, version } = await readFolded(rt, imageStream(input.id), imageFold);
  const image = requireImageWritable(caller, state, input.id);
  const events = decideImage({ type: 'delete', data: { at: now() } }, image);
  await appendNew(rt, imageStream(image.id), events, version, commandMetadata(caller));
  if (image.checksum) await removeBlobUnlessUsed(rt, image.checksum, image.id);
  return { image: events.reduce(evolveImage, image as StoredImage | null)! };
}
