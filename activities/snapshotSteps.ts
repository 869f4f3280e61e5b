import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StratusError } from '../domain/errors.js';
import { imageStream } from '../domain/events.js';
import { decideImage, imageFold, type ImageCommand, type ImageLifecycleEvent, type StoredImage } from '../domain/image.js';
import { idNamespaces, nameBasedUuid } from '../domain/nameBasedId.js';
import { AgentError } from '../hostagent/driver.js';
import { IMAGE_CHUNK_BYTES } from '../hostagent/protocol.js';
import { formatProblem } from '../server/imageFiles.js';
import { imageStore, removeBlobUnlessUsed } from '../server/imageStore.js';
import type { Runtime } from '../server/runtime.js';
import { activityContext, callAgent } from './agentCalls.js';
import { decideAndAppend, readFolded } from './events.js';
import { readInstance, vmNameOf } from './instanceRecords.js';
import { agentKey, metadataOf, runStep, writeKey, type OperationContext } from './operationSteps.js';

const now = () => new Date().toISOString();

/** The snapshot's file name on the host (`<snapshot dir>/<name>.qcow2`): one per image, so never another's. */
export const hostSnapshotName = (imageId: string): string => `snap-${imageId}`;

/** The upload a run holds on the image: one per attempt (and reset run), so a retried step finds its own. */
const uploadIdOf = (ctx: OperationContext) => nameBasedUuid(idNamespaces.operation, writeKey(ctx, 'uploadSnapshot'));

/**
 * The steps of snapshotInstance (workflows/snapshotInstance.ts): the host writes a standalone copy of
 * the instance's disk; the controller pulls it over the host's SSH connection into its content-addressed
 * image store (chunk by chunk, hashed as it arrives, never held whole), checks it is a qcow2 with no
 * backing file, and the image turns ACTIVE with its sha256; then the host's copy goes.
 */
export function snapshotSteps(rt: Runtime) {
  const readImage = async (imageId: string) => readFolded(rt, imageStream(imageId), imageFold);
  const onImage = (ctx: OperationContext, imageId: string, key: string, command: (image: StoredImage | null) => ImageCommand | null) =>
    decideAndAppend<StoredImage | null, ImageLifecycleEvent>(
      rt,
      imageStream(imageId),
      imageFold,
      (image) => {
        const c = command(image);
        return c ? decideImage(c, image) : [];
      },
      { key: writeKey(ctx, key), metadata: metadataOf(ctx), rounds: 10 },
    );

  return {
    async snapshotVm(ctx: OperationContext, request: { imageId: string }): Promise<{ sizeBytes: number }> {
      return runStep(rt, ctx, 'snapshotVm', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        const { sizeBytes } = await callAgent(
          rt,
          instance.hostId!,
          'snapshotVm',
          { name: vmNameOf(instance), imageName: hostSnapshotName(request.imageId) },
          { idempotencyKey: agentKey(ctx, 'snapshotVm') },
        );
        return { sizeBytes };
      });
    },

    async uploadSnapshot(ctx: OperationContext, request: { imageId: string }): Promise<{ checksum: string; sizeBytes: number }> {
      return runStep(rt, ctx, 'uploadSnapshot', async () => {
        const { state: image } = await readImage(request.imageId);
        if (!image || image.status === 'DELETED') throw new StratusError('NOT_FOUND', `image ${request.imageId} is gone`);
        // A retry after the image was recorded ACTIVE: the bytes are in the store already.
        if (image.status === 'ACTIVE' && image.checksum) return { checksum: image.checksum, sizeBytes: image.sizeBytes };
        const uploadId = uploadIdOf(ctx);
        await onImage(ctx, request.imageId, 'uploadStarted', () => ({ type: 'startUpload', data: { uploadId, at: now() } }));
        const instance = await readInstance(rt, ctx.instanceId);
        const { checksum, sizeBytes } = await pullSnapshot(rt, instance.hostId!, request.imageId, `${request.imageId}-${uploadId}`);
        await onImage(ctx, request.imageId, 'uploaded', () => ({ type: 'finishUpload', data: { uploadId, checksum, sizeBytes, at: now() } }));
        return { checksum, sizeBytes };
      });
    },

    /** The host's copy, once the controller holds the image (or gave up on it). */
    async removeHostSnapshot(ctx: OperationContext, request: { imageId: string }): Promise<void> {
      await runStep(rt, ctx, 'removeHostSnapshot', async () => {
        const instance = await readInstance(rt, ctx.instanceId);
        if (!instance.hostId) return;
        await callAgent(rt, instance.hostId, 'deleteSnapshot', { imageName: hostSnapshotName(request.imageId) }, { idempotencyKey: agentKey(ctx, 'removeHostSnapshot') });
      });
    },

    /**
     * The undo of a failed snapshot: no half image is left. The host's copy goes; an image the run did
     * not finish turns ERROR with the reason; one it finished (a later step failed) is deleted, and its
     * bytes with it unless another image holds the same ones.
     */
    async discardSnapshot(ctx: OperationContext, request: { imageId: string; reason: string }): Promise<void> {
      const instance = await readInstance(rt, ctx.instanceId);
      if (instance.hostId) {
        await callAgent(rt, instance.hostId, 'deleteSnapshot', { imageName: hostSnapshotName(request.imageId) }, { idempotencyKey: agentKey(ctx, 'discardSnapshot') });
      }
      const { state: image } = await onImage(ctx, request.imageId, 'discarded', (image) => {
        if (!image || image.status === 'DELETED' || image.status === 'ERROR') return null;
        if (image.status === 'ACTIVE') return { type: 'delete', data: { at: now() } };
        return { type: 'fail', data: { operationId: ctx.operationId, reason: request.reason, at: now() } };
      });
      if (image?.status === 'DELETED' && image.checksum) await removeBlobUnlessUsed(rt, image.checksum, image.id);
    },
  };
}

/**
 * Reads the host's snapshot into `<store>/tmp/<tmpName>` chunk by chunk, hashing each chunk as it
 * arrives, checks it (qemu-img: a qcow2 without a backing file), and renames it into the store under its
 * sha256. The temporary file goes whatever happens; the store only ever gets whole, checked images.
 */
async function pullSnapshot(rt: Runtime, hostId: string, imageId: string, tmpName: string): Promise<{ checksum: string; sizeBytes: number }> {
  const store = imageStore(rt);
  await mkdir(store.tmpDir, { recursive: true });
  await mkdir(store.blobDir, { recursive: true });
  const tmp = join(store.tmpDir, tmpName);
  const imageName = hostSnapshotName(imageId);
  const hash = createHash('sha256');
  let offset = 0;
  try {
    const file = await open(tmp, 'w');
    try {
      for (let total = Infinity; offset < total; ) {
        const chunk = await callAgent(rt, hostId, 'readSnapshotChunk', { imageName, offset, length: IMAGE_CHUNK_BYTES });
        total = chunk.sizeBytes;
        const data = Buffer.from(chunk.data, 'base64');
        if (data.length === 0 && offset < total) throw new Error(`the host's snapshot ended at ${offset} of ${total} bytes`);
        hash.update(data);
        await file.write(data, 0, data.length, offset);
        offset += data.length;
        activityContext()?.heartbeat({ percent: total > 0 ? Math.round((100 * offset) / total) : 100, message: 'pulling the snapshot into the image store' });
      }
      await file.sync();
    } finally {
      await file.close();
    }
    const problem = await formatProblem(tmp, 'qcow2');
    if (problem) throw new AgentError('HYPERVISOR_ERROR', `the host's snapshot is not a usable image: ${problem}`, false);
    const checksum = hash.digest('hex');
    const blob = store.blobPath(checksum);
    if (existsSync(blob)) await rm(tmp, { force: true });
    else await store.takeIn(tmp, checksum);
    return { checksum, sizeBytes: offset };
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
