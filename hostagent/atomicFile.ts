import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Files that processes create on first start (host keys, the controller key, the admin token) and
 * state files rewritten in place. Two rules keep them whole:
 *
 * - content is written and fsynced under a name no other process uses (pid + random suffix) before it
 *   gets its real name, so a reader sees no file or the whole file, never half of one;
 * - a first-start file gets its name with link(2), which fails when the name exists: of several
 *   processes racing on a fresh directory exactly one wins, and every one of them returns the winner's
 *   content. rename(2) would let a later process replace a key an earlier one already handed out.
 */

const tempName = (path: string) => `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;

function writeTemp(path: string, data: string | Buffer, mode: number): string {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = tempName(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/** Replaces `path` with `data` in one step: readers see the old content or the new. */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): void {
  const tmp = writeTemp(path, data, mode);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

/**
 * The content at `path`, creating it from `make()` when absent. `created` is true only for the one
 * process whose content got the name.
 */
export function readOrCreateOnce(path: string, make: () => string, mode = 0o600): { content: string; created: boolean } {
  try {
    return { content: readFileSync(path, 'utf8'), created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = writeTemp(path, make(), mode);
  let created = false;
  try {
    linkSync(tmp, path);
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  return { content: readFileSync(path, 'utf8'), created };
}

/**
 * Writes derived content (a key's public half) unless the file already holds exactly it: every
 * process may call it, none of them ever sees the file missing or half written once one has.
 */
export function ensureFileContent(path: string, data: string, mode = 0o644): void {
  try {
    if (readFileSync(path, 'utf8') === data) return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  writeFileAtomic(path, data, mode);
}
