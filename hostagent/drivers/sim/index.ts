import type { DriverOptions } from '../index.js';
import { SimDriver } from './simDriver.js';

export { SimDriver, SimCapacity } from './simDriver.js';
export { SimFaults } from './simFaults.js';

/** `--driver sim`: options vcpus, memoryMb, diskGb and the fault knobs of SimFaults. */
export function createSimDriver(opts: DriverOptions): SimDriver {
  return new SimDriver(opts.stateDir, opts.options);
}
