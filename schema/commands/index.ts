// What the GraphQL mutations call. Each takes (rt, caller, input) with input already parsed by zod at the
// edge, decides against the event streams, appends, starts the workflow, and returns domain values;
// refusals are StratusErrors (mapped to GraphQL errors in one place, in schema/).
export { bootInstance } from './bootInstance.js';
export {
  startInstance,
  stopInstance,
  rebootInstance,
  pauseInstance,
  unpauseInstance,
  suspendInstance,
  resumeInstance,
  deleteInstance,
} from './instanceActions.js';
export { migrateInstance } from './migrateInstance.js';
export { resizeInstance } from './resizeInstance.js';
export { registerHost, setHostState } from './hosts.js';
export { createFlavor, registerImage } from './catalog.js';
export { createProject, createToken } from './identity.js';
export { retryOperation } from './retryOperation.js';
export type { LifecycleResult } from './operations.js';
