import type { Image as CatalogImage } from '../domain/catalog.js';
import { canSeeImage, CreateImageInput, DeleteImageInput, type StoredImage } from '../domain/image.js';
import { canRead, type Caller } from '../domain/identity.js';
import type { Runtime } from '../server/runtime.js';
import * as commands from './commands/index.js';
import { builder, callerOf } from './builder.js';
import { parseInput } from './errors.js';
import * as read from './readModel.js';
import { ImageType, InstanceType } from './types.js';

/** CONTRACT.md's image fields beyond the catalog's, the image queries and the image mutations (Glance). */

interface ImageRow {
  id: string;
  name: string;
  format: string;
  size_bytes: string;
  checksum: string | null;
  status: string;
  visibility: 'PUBLIC' | 'PRIVATE';
  project_id: string | null;
  source_instance_id: string | null;
  error_reason: string | null;
  registered_at: Date;
  doc: StoredImage | null;
}

const storedImage = (r: ImageRow): StoredImage => ({
  id: r.id,
  name: r.name,
  format: r.format,
  status: r.status,
  visibility: r.visibility,
  projectId: r.project_id,
  checksum: r.checksum,
  sizeBytes: Number(r.size_bytes),
  sourceInstanceId: r.source_instance_id,
  errorReason: r.error_reason,
  uploadId: r.doc?.uploadId ?? null,
  createdAt: r.doc?.createdAt ?? new Date(r.registered_at).toISOString(),
  version: r.doc?.version ?? 1,
});

/** PUBLIC images and the caller's project's PRIVATE ones (an admin: all); deleted ones are history. */
export async function imagesVisibleTo(rt: Runtime, caller: Caller): Promise<StoredImage[]> {
  const rows = await rt.db.query<ImageRow>(`SELECT * FROM rm_images WHERE status <> 'DELETED' ORDER BY name, id`);
  return rows.map(storedImage).filter((i) => canSeeImage(caller, i));
}

export async function imageVisibleTo(rt: Runtime, caller: Caller, id: string): Promise<StoredImage | null> {
  const [row] = await rt.db.query<ImageRow>('SELECT * FROM rm_images WHERE id = $1', [id]);
  const image = row ? storedImage(row) : null;
  return image && canSeeImage(caller, image) ? image : null;
}

/** The GraphQL Image type is backed by the catalog's shape; uploaded images carry more. */
const asImage = (i: StoredImage) => i as unknown as CatalogImage;
const stored = (i: CatalogImage) => i as unknown as Partial<StoredImage>;

builder.objectFields(ImageType, (t) => ({
  visibility: t.string({ description: 'PUBLIC (every project) or PRIVATE (its project only)', resolve: (i) => stored(i).visibility ?? 'PUBLIC' }),
  projectId: t.id({ nullable: true, resolve: (i) => stored(i).projectId ?? null }),
  errorReason: t.string({ nullable: true, description: 'Why the upload was refused.', resolve: (i) => stored(i).errorReason ?? null }),
  createdAt: t.field({ type: 'DateTime', nullable: true, resolve: (i) => stored(i).createdAt ?? null }),
  sourceInstance: t.field({
    type: InstanceType,
    nullable: true,
    resolve: (i, _a, ctx) => {
      const id = stored(i).sourceInstanceId;
      return id ? read.instanceById(ctx.rt, callerOf(ctx), id) : null;
    },
  }),
}));

builder.queryFields((t) => ({
  image: t.field({
    type: ImageType,
    nullable: true,
    authScopes: { reader: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_r, { id }, ctx) => {
      const image = await imageVisibleTo(ctx.rt, callerOf(ctx), String(id));
      return image ? asImage(image) : null;
    },
  }),
}));

const CreateImagePayload = builder.objectRef<{ image: StoredImage; uploadUrl: string }>('CreateImagePayload').implement({
  fields: (t) => ({
    image: t.field({ type: ImageType, resolve: (p) => asImage(p.image) }),
    uploadUrl: t.exposeString('uploadUrl', { description: 'PUT the bytes here (same bearer token), relative to the API.' }),
  }),
});
const DeleteImagePayload = builder.objectRef<{ image: StoredImage }>('DeleteImagePayload').implement({
  fields: (t) => ({ image: t.field({ type: ImageType, resolve: (p) => asImage(p.image) }) }),
});
const CreateImageInputType = builder.inputType('CreateImageInput', {
  fields: (t) => ({ name: t.string({ required: true }), format: t.string({ required: true }), visibility: t.string({ required: false }) }),
});
const DeleteImageInputType = builder.inputType('DeleteImageInput', { fields: (t) => ({ id: t.id({ required: true }) }) });

builder.mutationFields((t) => ({
  createImage: t.field({
    type: CreateImagePayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateImageInputType, required: true }) },
    resolve: (_r, a, ctx) => commands.createImage(ctx.rt, callerOf(ctx), parseInput(CreateImageInput, a.input)),
  }),
  deleteImage: t.field({
    type: DeleteImagePayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DeleteImageInputType, required: true }) },
    resolve: (_r, a, ctx) => commands.deleteImage(ctx.rt, callerOf(ctx), parseInput(DeleteImageInput, a.input)),
  }),
}));



/*
 * The image after each change (a console watching an upload go QUEUED -> SAVING -> ACTIVE). PUBLIC
 * images are everyone's to follow; a PRIVATE one its project's (and admins'). A deleted image is no
 * longer visible, so its deletion reaches only the one who deleted it, from the mutation's answer.
 */
builder.subscriptionField('imageChanged', (t) =>
  t.field({
    type: ImageType,
    authScopes: { reader: true },
    description: "The image after each change (status, size, checksum); every image the caller may see when id is omitted.",
    args: { id: t.arg.id({ required: false }) },
    subscribe: (_r, { id }, ctx) => {
      const caller = callerOf(ctx);
      return ctx.changes.follow(
        (c) => c.kind === 'image' && (id == null || c.id === String(id)) && (c.projectId === null || canRead(caller, c.projectId)),
        async (c) => {
          const image = await imageVisibleTo(ctx.rt, caller, c.id);
          return image ? asImage(image) : null;
        },
      );
    },
    resolve: (image) => image,
  }),
);
