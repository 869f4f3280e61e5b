import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();
let hooked = false;

/**
 * Children spawned detached (own process group) are not hit by the terminal's Ctrl-C, so they must not
 * outlive this process when it exits another way (an uncaught error, process.exit): SIGKILL them then.
 * Only a SIGKILL of this process itself can leave them behind.
 */
export function killWithParent(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
}
