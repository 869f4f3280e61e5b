import { open } from 'node:fs/promises';
import { imageStream } from '../domain/events.js';
import { imageFold, type StoredImage } from '../domain/image.js';
import { IMAGE_CHUNK_BYTES } from '../hostagent/protocol.js';
import { imageStore } from '../server/imageStore.js';
import type { Runtime } from '../server/runtime.js';
import { activityContext, callAgent } from './agentCalls.js';
import { readFolded } from './events.js';
import { readInstance } from './instanceRecords.js';
import { agentKey, runStep, type OperationContext } from './operationSteps.js';

/** The image's bytes in the controller's store, or null for a registered image that has none. */
/** An image whose bytes are in the controller's store (uploaded); a registered image has none to send. */
export const hasStoredBytes = (image: StoredImage | null): image is StoredImage & { checksum: string } =>
  image?.status === 'ACTIVE' && !!image.checksum;

async function uploadedImage(rt: Runtime, imageId: string): Promise<(StoredImage & { checksum: string }) | null> {
  const { state } = await readFolded(rt, imageStream(imageId), imageFold);
  return hasStoredBytes(state) ? state : null;
}

/**
 * The boot step before createVm: the host keeps base images by checksum, and one it lacks is sent from
 * the controller's store over the agent's SSH connection, chunk by chunk, the step's progress reported
 * as the activity's heartbeat. A host that has the image already costs one call. Registered images
 * without bytes need nothing, and then the step is not recorded at all.
 */
export function imageFetchSteps(rt: Runtime) {
  return {
    async fetchImage(ctx: OperationContext): Promise<void> {
      const instance = await readInstance(rt, ctx.instanceId);
      const image = await uploadedImage(rt, instance.imageId);
      if (!image || !instance.hostId) return;
      const hostId = instance.hostId;
      await runStep(rt, ctx, 'fetchImage', async () => {
        if ((await callAgent(rt, hostId, 'hasImage', { checksum: image.checksum })).present) return;
        const file = await open(imageStore(rt).blobPath(image.checksum), 'r');
        try {
          const buffer = Buffer.alloc(IMAGE_CHUNK_BYTES);
          for (let offset = 0; offset < image.sizeBytes; offset += IMAGE_CHUNK_BYTES) {
            const { bytesRead } = await file.read(buffer, 0, IMAGE_CHUNK_BYTES, offset);
            await callAgent(rt, hostId, 'putImageChunk', { checksum: image.checksum, offset, data: buffer.subarray(0, bytesRead).toString('base64') }, {
              idempotencyKey: agentKey(ctx, `fetchImage:${offset}`),
            });
            activityContext()?.heartbeat({ percent: Math.round((100 * (offset + bytesRead)) / image.sizeBytes), message: 'sending the image to the host' });
          }
        } finally {
          await file.close();
        }
        await callAgent(rt, hostId, 'commitImage', { checksum: image.checksum, sizeBytes: image.sizeBytes }, { idempotencyKey: agentKey(ctx, 'fetchImage:commit') });
      });
    },
  };
}

/** How the VM boots: from the host's cached copy of an uploaded image; undefined for an image without bytes. */
export async function bootSourceOf(rt: Runtime, hostId: string, imageId: string): Promise<{ kind: 'image'; imagePath: string } | undefined> {
  const image = await uploadedImage(rt, imageId);
  if (!image) return undefined;
  const cached = await callAgent(rt, hostId, 'hasImage', { checksum: image.checksum });
  return { kind: 'image', imagePath: cached.path };
}
