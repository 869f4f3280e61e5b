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
export { createVolume } from './createVolume.js';
export { deleteVolume } from './deleteVolume.js';
export { attachVolume } from './attachVolume.js';
export { detachVolume } from './detachVolume.js';
export { snapshotVolume } from './snapshotVolume.js';
export { bareWorkflow } from './bench.js';
export type { OperationInput } from './runbook.js';
export type { VolumeOperationInput } from './volumeRunbook.js';
