import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError, VolumeId, type CallContext, type PoolVolume } from '../../driver.js';
import { runTool } from './vmProcess.js';

/**
 * The shared storage pool as one host sees it: `<pool>/<volumeId>.qcow2` for volumes and
 * `<pool>/snapshots/<snapshotId>.qcow2` for their snapshots. Every host mounts the pool at the same path
 * (NFS or CephFS in production), so any host may create, copy or delete a file that is not attached.
 * Each file is written under a temporary name and renamed when whole: a kill never leaves half a volume.
 */
export class VolumePool {
  constructor(readonly dir: string) {}

  volumePath(volumeId: string): string {
    return join(this.dir, `${checked(volumeId)}.qcow2`);
  }

  snapshotPath(snapshotId: string): string {
    return join(this.dir, 'snapshots', `${checked(snapshotId)}.qcow2`);
  }

  async create(opts: { volumeId: string; sizeGb: number; fromSnapshotId?: string }, ctx: CallContext): Promise<PoolVolume> {
    const path = this.volumePath(opts.volumeId);
    if (!existsSync(path)) {
      mkdirSync(this.dir, { recursive: true });
      const tmp = `${path}.tmp`;
      rmSync(tmp, { force: true });
      if (opts.fromSnapshotId) {
        const source = this.snapshotPath(opts.fromSnapshotId);
        if (!existsSync(source)) throw new AgentError('NOT_FOUND', `snapshot ${opts.fromSnapshotId} is not in the pool`);
        ctx.progress({ message: 'copying the snapshot' });
        await runTool('qemu-img', ['convert', '-O', 'qcow2', source, tmp]);
        await runTool('qemu-img', ['resize', '-q', tmp, `${opts.sizeGb}G`]).catch(() => undefined);
      } else {
        await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', tmp, `${opts.sizeGb}G`]);
      }
      renameSync(tmp, path);
    }
    return { volumeId: opts.volumeId, path, sizeBytes: statSync(path).size };
  }

  async snapshot(opts: { volumeId: string; snapshotId: string }, ctx: CallContext): Promise<PoolVolume> {
    const source = this.volumePath(opts.volumeId);
    if (!existsSync(source)) throw new AgentError('NOT_FOUND', `volume ${opts.volumeId} is not in the pool`);
    const path = this.snapshotPath(opts.snapshotId);
    if (!existsSync(path)) {
      mkdirSync(join(this.dir, 'snapshots'), { recursive: true });
      const tmp = `${path}.tmp`;
      rmSync(tmp, { force: true });
      ctx.progress({ message: 'copying the volume' });
      await runTool('qemu-img', ['convert', '-O', 'qcow2', source, tmp]);
      renameSync(tmp, path);
    }
    return { volumeId: opts.snapshotId, path, sizeBytes: statSync(path).size };
  }

  async delete(opts: { volumeId: string; snapshotIds: string[] }): Promise<{ deleted: boolean }> {
    const path = this.volumePath(opts.volumeId);
    const existed = existsSync(path);
    rmSync(path, { force: true });
    for (const id of opts.snapshotIds) rmSync(this.snapshotPath(id), { force: true });
    return { deleted: existed };
  }
}

function checked(id: string): string {
  if (!VolumeId.safeParse(id).success) throw new AgentError('BAD_REQUEST', `bad volume id ${id}`);
  return id;
}
