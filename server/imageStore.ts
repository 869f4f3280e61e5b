import { join } from 'node:path';
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
  };
}
