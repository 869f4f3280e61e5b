import type { HypervisorDriver } from '../../driver.js';
import { QemuDriver } from './qemuDriver.js';

export { QemuDriver } from './qemuDriver.js';
export { buildQemuArgv, vmPaths, type QemuLaunch } from './commandLine.js';
export { QemuOptions } from './options.js';

/** The agent's entry point for `--driver qemu`; options come from `--driver-option key=value`. */
export function createQemuDriver(opts: { stateDir: string; options?: Record<string, string> }): HypervisorDriver {
  return new QemuDriver(opts.stateDir, opts.options ?? {});
}
