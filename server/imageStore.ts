import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { imageStream } from '../domain/events.js';
import type { Runtime } from './runtime.js';

/**
 * The controller's image store: `<data dir>/images/sha256/<hex>` holds each distinct image once, and
 * uploads are written under `tmp/` first, so the store only ever holds whole, checked images.
 */
export function imageStore(rt: Pick<Runtime, 'config'>) {
  const root = join(rt.config.dataDir, 'images');
  return {
    root,
    tmpDir: join(root, 'tmp'),
    blobDir: join(root, 'sha256'),
    blobPath: (checksum: string) => join(root, 'sha256', checksum),
    /**
     * Takes a checked file (flushed already) into the store under its checksum, and flushes the
     * directory too, so the rename survives a crash before the upload is recorded as finished.
     */
    async takeIn(tmp: string, checksum: string): Promise<void> {
      await rename(tmp, join(root, 'sha256', checksum));
      const dir = await open(join(root, 'sha256'), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    },
  };
}

/**
 * Removes the bytes of `checksum` from the store unless an image other than `except`, not deleted,
 * holds the same bytes (the store is content-addressed). Read from the log, not a projection.
 */
export async function removeBlobUnlessUsed(rt: Pick<Runtime, 'config' | 'db'>, checksum: string, except: string): Promise<boolean> {
  const [row] = await rt.db.query<{ used: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM events u WHERE u.type = 'ImageUploaded' AND u.data->>'checksum' = $1 AND u.stream_id <> $2
         AND NOT EXISTS (SELECT 1 FROM events d WHERE d.stream_id = u.stream_id AND d.type = 'ImageDeleted')
     ) AS used`,
    [checksum, imageStream(except)],
  );
  if (row?.used === true) return false;
  await rm(imageStore(rt).blobPath(checksum), { force: true });
  return true;
}
