import { existsSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError, VmName } from './driver.js';

/**
 * The instance snapshots a host has written (`snapshotVm`), under `<snapshot dir>/<imageName>.qcow2`,
 * until the controller has pulled them into its image store: read chunk by chunk over the agent's SSH
 * connection (the reverse of the image cache's putImageChunk), then removed.
 */
export class SnapshotFiles {
  constructor(readonly dir: string) {}

  path(imageName: string): string {
    if (!VmName.safeParse(imageName).success) throw new AgentError('BAD_REQUEST', `bad snapshot name ${imageName}`);
    return join(this.dir, `${imageName}.qcow2`);
  }

  /** `length` bytes from `offset` (fewer at the end), with the file's whole size so the reader knows when it is done. */
  async read(imageName: string, offset: number, length: number): Promise<{ data: Buffer; sizeBytes: number }> {
    const path = this.path(imageName);
    if (!existsSync(path)) throw new AgentError('NOT_FOUND', `no snapshot ${imageName} on this host`);
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      const buffer = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      const { bytesRead } = buffer.length > 0 ? await file.read(buffer, 0, buffer.length, offset) : { bytesRead: 0 };
      return { data: buffer.subarray(0, bytesRead), sizeBytes: size };
    } finally {
      await file.close();
    }
  }

  /** Removes the snapshot; one that is not there (never written, removed already) is not an error. */
  async remove(imageName: string): Promise<{ deleted: boolean }> {
    const path = this.path(imageName);
    const existed = existsSync(path) && (await stat(path)).isFile();
    await rm(path, { force: true });
    await rm(`${path}.tmp`, { force: true });
    return { deleted: existed };
  }
}
