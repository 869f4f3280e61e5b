// Every workflow the worker registers; the workflow type is the export name.
export { bootInstance } from './bootInstance.js';
export { startInstance } from './startInstance.js';
export { stopInstance } from './stopInstance.js';
export { rebootInstance } from './rebootInstance.js';
export { pauseInstance } from './pauseInstance.js';
export { unpauseInstance } from './unpauseInstance.js';
export { suspendInstance } from './suspendInstance.js';
export { resumeInstance } from './resumeInstance.js';
export { deleteInstance } from './deleteInstance.js';
export { migrateInstance } from './migrateInstance.js';
export { resizeInstance } from './resizeInstance.js';
export { drainHost } from './drainHost.js';
export { evacuateHost } from './evacuateHost.js';
export { evacuateInstance } from './evacuateInstance.js';
export { hostHealth } from './hostHealth.js';
export { bareWorkflow } from './bench.js';
export type { OperationInput } from './runbook.js';
