import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { VmInfo } from '../../driver.js';
import { PortInfo } from '../../network.js';

export const SimVm = z.object({ info: VmInfo, console: z.array(z.string()) });
export type SimVm = z.infer<typeof SimVm>;

/** Keys of calls whose change is in this file, with their results: the change and its outcome commit together. */
const Applied = z.object({ key: z.string(), result: z.unknown(), at: z.number() });

/** A volume or snapshot file of the pool, as the sim pretends to keep it. */
export const SimVolume = z.object({ sizeGb: z.number().int(), snapshotOf: z.string().optional() });

export const SimState = z.object({
  vms: z.record(z.string(), SimVm).default({}),
  volumes: z.record(z.string(), SimVolume).default({}),
  ports: z.record(z.string(), PortInfo).default({}),
  groups: z.record(z.string(), z.array(z.string())).default({}),
  applied: z.array(Applied).default([]),
});
export type SimState = z.infer<typeof SimState>;

const KEEP_APPLIED = 2000;

/**
 * The sim's whole state in one JSON file, replaced atomically (write temp, fsync, rename). The rename
 * is the commit point of every sim operation: a kill before it leaves the operation not done at all.
 */
export class SimStore {
  private tail: Promise<void> = Promise.resolve();
  private pending: Promise<void> | undefined;

  private constructor(
    private readonly path: string,
    readonly state: SimState,
  ) {}

  static async load(stateDir: string): Promise<SimStore> {
    const dir = join(stateDir, 'sim');
    await mkdir(dir, { recursive: true });
    const path = join(dir, 'state.json');
    let raw: unknown = {};
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return new SimStore(path, SimState.parse(raw));
  }

  appliedResult(key: string | undefined): { result: unknown } | undefined {
    if (!key) return undefined;
    const hit = this.state.applied.find((a) => a.key === key);
    return hit && { result: hit.result };
  }

  /** Records the call's key with its result and writes the state; resolves once it is on disk. */
  commit<T>(key: string | undefined, result: T): Promise<T> {
    if (key) {
      this.state.applied.push({ key, result, at: Date.now() });
      if (this.state.applied.length > KEEP_APPLIED) this.state.applied.splice(0, this.state.applied.length - KEEP_APPLIED);
    }
    return this.save().then(() => result);
  }

  /**
   * Group commit: calls that arrive while a write runs share the next one, which writes the state as it
   * is when it starts, so it carries every change made before it.
   */
  save(): Promise<void> {
    if (!this.pending) {
      const next = this.tail.then(() => {
        this.pending = undefined;
        return this.write();
      });
      this.pending = next;
      this.tail = next.catch(() => undefined);
    }
    return this.pending;
  }

  private async write() {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const f = await open(tmp, 'w');
    try {
      await f.write(JSON.stringify(this.state));
      await f.datasync();
    } finally {
      await f.close();
    }
    await rename(tmp, this.path);
  }
}
