import { readFileSync } from 'node:fs';

/**
 * A process's command line as its arguments (`/proc/<pid>/cmdline`), or undefined when there is no such
 * process. An exited one nobody has reaped yet reads as `['']`. Pid files are checked against it, since a
 * pid may have been reused by an unrelated process.
 */
export function commandLineOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}
