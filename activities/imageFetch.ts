import { open } from 'node:fs/promises';
import { imageStream } from '../domain/events.js';
import { imageFold, type StoredImage } from '../domain/image.js';
import { IMAGE_CHUNK_BYTES } from '../hostagent/protocol.js';
import { imageStore } from '../server/imageStore.js';
import type { Runtime } from '../server/runtime.js';
import { activityContext, callAgent } from './agentCalls.js';
import { readFolded } from './events.js';
import { readInstance } from './instanceRecords.js';
import { agentKey, runStep, stepProgress, type OperationContext } from './operationSteps.js';

/** An image whose bytes are in the controller's store (uploaded); a registered image has none to send. */
export const hasStoredBytes = (image: StoredImage | null): image is StoredImage & { checksum: string } =>
  image?.status === 'ACTIVE' && !!image.checksum;

async function uploadedImage(rt: Runtime, imageId: string): Promise<(StoredImage & { checksum: string }) | null> {
  const { state } = await readFolded(rt, imageStream(imageId), imageFold);
  return hasStoredBytes(state) ? state : null;
}

/**
 * Whether a host must hold the image before a VM of it is made there: a move (migration, resize onto
 * another host, evacuation) asks this once when it claims its target, and only then fetches.
 */
export async function hasImageToFetch(rt: Runtime, imageId: string): Promise<boolean> {
  return (await uploadedImage(rt, imageId)) !== null;
}

/**
 * The step before a VM is made on a host: the host keeps base images by checksum, and one it lacks is
 * sent from the controller's store over the agent's SSH connection, chunk by chunk, its progress kept
 * on the step (and reported as the activity's heartbeat). A host that has the image already costs one
 * call. Registered images without bytes need nothing, and then the step is not recorded at all.
 *
 * A boot fetches to the instance's host; a move names its target (`to`), which must hold the base
 * before its twin's disk is made there as an overlay on it.
 */
export function imageFetchSteps(rt: Runtime) {
  return {
    async fetchImage(ctx: OperationContext, to?: { hostId: string }): Promise<void> {
      const instance = await readInstance(rt, ctx.instanceId);
      const image = await uploadedImage(rt, instance.imageId);
      const hostId = to?.hostId ?? instance.hostId;
      if (!image || !hostId) return;
      await runStep(rt, ctx, 'fetchImage', async () => {
        const progress = stepProgress(rt, ctx, 'fetchImage');
        try {
          if ((await callAgent(rt, hostId, 'hasImage', { checksum: image.checksum })).present) {
            progress.final({ percent: 100, message: 'the host has the image already' });
            return;
          }
          await sendImage(rt, ctx, hostId, image, (p) => {
            progress.report(p);
            activityContext()?.heartbeat(p);
          });
          progress.final({ percent: 100, message: `sent ${image.sizeBytes} bytes to the host` });
        } finally {
          await progress.settled();
        }
      });
    },
  };
}

async function sendImage(
  rt: Runtime,
  ctx: OperationContext,
  hostId: string,
  image: StoredImage & { checksum: string },
  report: (p: { percent: number; message: string }) => void,
): Promise<void> {
  const file = await open(imageStore(rt).blobPath(image.checksum), 'r');
  try {
    const buffer = Buffer.alloc(IMAGE_CHUNK_BYTES);
    for (let offset = 0; offset < image.sizeBytes; offset += IMAGE_CHUNK_BYTES) {
      const { bytesRead } = await file.read(buffer, 0, IMAGE_CHUNK_BYTES, offset);
      await callAgent(rt, hostId, 'putImageChunk', { checksum: image.checksum, offset, data: buffer.subarray(0, bytesRead).toString('base64') }, {
        idempotencyKey: agentKey(ctx, `fetchImage:${offset}`),
      });
      report({ percent: Math.round((100 * (offset + bytesRead)) / image.sizeBytes), message: 'sending the image to the host' });
    }
  } finally {
    await file.close();
  }
  await callAgent(rt, hostId, 'commitImage', { checksum: image.checksum, sizeBytes: image.sizeBytes }, { idempotencyKey: agentKey(ctx, 'fetchImage:commit') });
}

/**
 * How a VM boots on `hostId`: from that host's cached copy of an uploaded image (its own path, which
 * the host names); undefined for an image without bytes.
 */
export async function bootSourceOf(rt: Runtime, hostId: string, imageId: string): Promise<{ kind: 'image'; imagePath: string } | undefined> {
  const image = await uploadedImage(rt, imageId);
  if (!image) return undefined;
  const cached = await callAgent(rt, hostId, 'hasImage', { checksum: image.checksum });
  return { kind: 'image', imagePath: cached.path };
}
