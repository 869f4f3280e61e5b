import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { commandLineOf } from './procfs.js';

/** Whether `pid` is a live Node process (a pid reused by something else does not hold the data dir). */
function liveNode(pid: number): boolean {
  return commandLineOf(pid)?.[0]?.endsWith('node') ?? false;
}

/**
 * Claims the data dir for this controller (`<dataDir>/stratus.pid`), before anything in it is touched: a
 * second `stratus dev` on a data dir that a live one holds is refused with who holds it, instead of
 * taking over its Temporal dev server and database. A pid file left by a controller that was killed
 * outright names a process that is gone, and is taken over. Returns the release.
 */
export function claimDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'stratus.pid');
  for (let round = 0; ; round++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
        } catch {
          // Already gone.
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || round > 0) throw e;
    }
    const holder = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && liveNode(holder)) {
      throw new Error(`another stratus (pid ${holder}) is running on the data dir ${dataDir}: stop it first, or set STRATUS_DATA_DIR to another directory`);
    }
    rmSync(file, { force: true });
  }
}
