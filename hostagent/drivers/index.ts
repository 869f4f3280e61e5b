import type { HypervisorDriver } from '../driver.js';

/** What every driver module exports as `create<Kind>Driver`. `options` are the `--driver-option k=v` pairs. */
export interface DriverOptions {
  stateDir: string;
  options: Record<string, string>;
}
export type DriverFactory = (opts: DriverOptions) => HypervisorDriver | Promise<HypervisorDriver>;

// A variable specifier keeps the type checker from requiring the module at build time: qemu lands in
// its own folder on its own schedule, and an agent started with `--driver sim` never loads it.
const qemuModule = './qemu/index.js';

/** The drivers an agent can run, each loaded only when chosen. */
export const drivers: Record<string, () => Promise<DriverFactory>> = {
  sim: async () => (await import('./sim/index.js')).createSimDriver,
  qemu: async () => ((await import(qemuModule)) as { createQemuDriver: DriverFactory }).createQemuDriver,
};

export async function createDriver(kind: string, opts: DriverOptions): Promise<HypervisorDriver> {
  const load = drivers[kind];
  if (!load) throw new Error(`unknown driver ${JSON.stringify(kind)}; known: ${Object.keys(drivers).join(', ')}`);
  let factory: DriverFactory;
  try {
    factory = await load();
  } catch (e) {
    throw new Error(`driver ${kind} cannot be loaded: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return factory(opts);
}
