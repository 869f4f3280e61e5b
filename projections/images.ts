import { evolveImage, imageEvents, type ImageLifecycleEvent, type StoredImage } from '../domain/image.js';
import type { Migration, Queryable } from '../eventstore/index.js';
import { loadDoc, upsertRow, type Change, type StratusEvent } from './projection.js';

/** The columns uploaded images need beside the catalog's; a registered image is PUBLIC with no project. */
export const imageMigrations: Migration[] = [
  {
    id: 'projections/catalog/002-uploaded-images',
    sql: `ALTER TABLE rm_images
        ADD COLUMN visibility text NOT NULL DEFAULT 'PUBLIC',
        ADD COLUMN project_id uuid,
        ADD COLUMN source_instance_id uuid,
        ADD COLUMN error_reason text,
        ADD COLUMN doc jsonb;`,
  },
];

/** rm_images rows of uploaded images, folded with the domain's `evolveImage` (part of the catalog projection). */
export async function applyImageLifecycle(tx: Queryable, event: StratusEvent): Promise<Change[]> {
  if (!Object.hasOwn(imageEvents, event.type) || !event.streamId.startsWith('image-')) return [];
  const id = event.streamId.slice('image-'.length);
  const after = evolveImage(await loadDoc<StoredImage>(tx, 'rm_images', id), { type: event.type, data: event.data } as ImageLifecycleEvent);
  if (!after) return [];
  await upsertRow(tx, 'rm_images', {
    id,
    name: after.name,
    format: after.format,
    size_bytes: after.sizeBytes,
    checksum: after.checksum,
    status: after.status,
    registered_at: after.createdAt,
    visibility: after.visibility,
    project_id: after.projectId,
    source_instance_id: after.sourceInstanceId,
    error_reason: after.errorReason,
    doc: JSON.stringify(after),
  });
  return [{ kind: 'image', id, projectId: after.visibility === 'PUBLIC' ? null : after.projectId }];
}
