import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AgentError } from './driver.js';

/**
 * The host's cache of base images, keyed by sha256: `<state dir>/image-cache/<checksum>`. The controller
 * sends a missing image in chunks over the agent's SSH connection into `<checksum>.part`; `commit` checks
 * the whole file hashes to its name before renaming it, so the cache only ever holds whole images, and a
 * half-sent one is simply sent again (each chunk names its offset).
 */
export class ImageCache {
  constructor(readonly dir: string) {}

  path(checksum: string): string {
    if (!/^[0-9a-f]{64}$/.test(checksum)) throw new AgentError('BAD_REQUEST', `bad image checksum ${checksum}`);
    return join(this.dir, checksum);
  }

  async has(checksum: string): Promise<{ present: boolean; path: string; sizeBytes: number }> {
    const path = this.path(checksum);
    const size = existsSync(path) ? (await stat(path)).size : 0;
    return { present: existsSync(path), path, sizeBytes: size };
  }

  async writeChunk(checksum: string, offset: number, data: Buffer): Promise<{ written: number }> {
    const path = this.path(checksum);
    if (existsSync(path)) return { written: 0 };
    await mkdir(this.dir, { recursive: true });
    const part = `${path}.part`;
    const file = await open(part, existsSync(part) ? 'r+' : 'w');
    try {
      await file.write(data, 0, data.length, offset);
    } finally {
      await file.close();
    }
    return { written: data.length };
  }

  async commit(checksum: string, sizeBytes: number): Promise<{ path: string; sizeBytes: number }> {
    const path = this.path(checksum);
    if (existsSync(path)) return { path, sizeBytes: (await stat(path)).size };
    const part = `${path}.part`;
    if (!existsSync(part)) throw new AgentError('NOT_FOUND', `no part of image ${checksum} was sent`);
    const size = (await stat(part)).size;
    const hash = createHash('sha256');
    await pipeline(createReadStream(part), hash);
    const actual = hash.digest('hex');
    if (size !== sizeBytes || actual !== checksum) {
      await rm(part, { force: true });
      throw new AgentError('BAD_REQUEST', `image ${checksum} arrived as ${size} bytes hashing to ${actual}; it was sent again from nothing`);
    }
    await rename(part, path);
    return { path, sizeBytes: size };
  }
}
