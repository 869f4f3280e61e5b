import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { readOrCreateOnce, writeFileAtomic } from './atomicFile.js';

export interface StateDirLock {
  release(): void;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * One agent per state dir. Its driver state, idempotency journal and host key are each written by a
 * single process; a second agent started on the same dir (a supervisor restarting too early, a typo in
 * a unit file) must fail at start instead of interleaving writes with the first. The lock file holds
 * `<pid> <nonce>`; a lock whose process is gone (kill -9) is taken over.
 */
export function lockStateDir(stateDir: string): StateDirLock {
  const path = join(stateDir, 'agent.lock');
  const mine = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const { content } = readOrCreateOnce(path, () => mine);
    if (content === mine) return { release: () => releaseIfMine(path, mine) };
    const holder = Number(content.split(' ')[0]);
    if (Number.isInteger(holder) && holder > 0 && alive(holder)) {
      throw new Error(`state dir ${stateDir} is in use by another host agent (pid ${holder}, ${path}); stop it first`);
    }
    // Stale: move it aside under a name of our own, so two agents taking over the same stale lock do
    // not delete each other's fresh one, then race for the name again.
    const aside = `${path}.${process.pid}.stale`;
    try {
      renameSync(path, aside);
      if (readFileSync(aside, 'utf8') !== content) writeFileAtomic(path, readFileSync(aside, 'utf8')); // not the stale one: put it back
      unlinkSync(aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  throw new Error(`could not take the lock ${path}: other agents keep starting on ${stateDir}`);
}

function releaseIfMine(path: string, mine: string) {
  try {
    if (readFileSync(path, 'utf8') === mine) unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
