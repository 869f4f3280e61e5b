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
export { snapshotInstance } from './snapshotInstance.js';
export { registerHost, setHostState } from './hosts.js';
export { createFlavor, registerImage } from './catalog.js';
export { createProject, createToken } from './identity.js';
export { retryOperation } from './retryOperation.js';
export { createVolume, deleteVolume, attachVolume, detachVolume, snapshotVolume, type VolumeResult } from './volumes.js';
export { createImage, deleteImage } from './images.js';
export { createNetwork, deleteNetwork } from './networks.js';
export { allocateIp, releaseIp, associateIp, disassociateIp } from './addresses.js';
export { createSecurityGroup, addSecurityGroupRule, removeSecurityGroupRule, setInstanceSecurityGroups } from './securityGroups.js';
export type { SecurityGroupResult } from './securityGroups.js';
export type { LifecycleResult } from './operations.js';
export { resetOperation } from './resetOperation.js';
export { setPrice } from './metering.js';
