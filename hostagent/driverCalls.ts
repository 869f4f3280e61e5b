import type { CallContext, HypervisorDriver } from './driver.js';
import type { MethodName, ResultOf } from './protocol.js';
import { z } from 'zod';
import { methods, PROTOCOL_VERSION } from './protocol.js';
import { ImageCache } from './imageCache.js';
import { SnapshotFiles } from './snapshotFiles.js';
import { AgentError } from './driver.js';
import type { NetworkDataPlane } from './network.js';

const dataPlane = (d: HypervisorDriver): NetworkDataPlane => {
  if (!d.network) throw new AgentError('UNSUPPORTED', `the ${d.kind} driver has no network data plane`, false);
  return d.network;
};

/** The agent's version as the controller sees it in hostInfo. */
export const AGENT_VERSION = '0.1.0';

type Parsed<M extends MethodName> = z.output<(typeof methods)[M]['params']>;
type DriverCall<M extends MethodName> = (d: HypervisorDriver, p: Parsed<M>, ctx: CallContext) => Promise<ResultOf<M>>;

/** How each protocol method maps onto the driver contract (`cancel` is handled by the session itself). */
export const driverCalls: { [M in Exclude<MethodName, 'cancel'>]: DriverCall<M> } = {
  ping: async () => ({ pong: true }),
  hostInfo: async (d) => ({ ...(await d.hostInfo()), agentVersion: AGENT_VERSION, protocolVersion: PROTOCOL_VERSION }),
  listVms: async (d) => ({ vms: await d.listVms() }),
  getVm: (d, p) => d.getVm(p.name),
  consoleLog: (d, p) => d.consoleLog(p.name, { lines: p.lines }),
  sampleVms: async (d) => ({ samples: await d.sampleVms() }),
  createVm: (d, p, ctx) => d.createVm(p.spec, ctx),
  startVm: (d, p, ctx) => d.startVm(p.name, ctx),
  stopVm: (d, p, ctx) => d.stopVm(p.name, { force: p.force }, ctx),
  rebootVm: (d, p, ctx) => d.rebootVm(p.name, { hard: p.hard }, ctx),
  pauseVm: (d, p, ctx) => d.pauseVm(p.name, ctx),
  unpauseVm: (d, p, ctx) => d.unpauseVm(p.name, ctx),
  suspendVm: (d, p, ctx) => d.suspendVm(p.name, ctx),
  resumeVm: (d, p, ctx) => d.resumeVm(p.name, ctx),
  destroyVm: (d, p, ctx) => d.destroyVm(p.name, ctx),
  snapshotVm: (d, p, ctx) => d.snapshotVm(p.name, { imageName: p.imageName }, ctx),
  attachVolume: (d, p, ctx) => d.attachVolume(p.name, { volumeId: p.volumeId, sizeGb: p.sizeGb }, ctx),
  detachVolume: (d, p, ctx) => d.detachVolume(p.name, { volumeId: p.volumeId }, ctx),
  createVolume: (d, p, ctx) =>
    d.createVolume({ volumeId: p.volumeId, sizeGb: p.sizeGb, ...(p.fromSnapshotId ? { fromSnapshotId: p.fromSnapshotId } : {}) }, ctx),
  deleteVolume: (d, p, ctx) => d.deleteVolume({ volumeId: p.volumeId, snapshotIds: p.snapshotIds }, ctx),
  snapshotVolume: (d, p, ctx) => d.snapshotVolume({ volumeId: p.volumeId, snapshotId: p.snapshotId }, ctx),
  hasImage: (d, p) => new ImageCache(d.imageCacheDir).has(p.checksum),
  putImageChunk: (d, p) => new ImageCache(d.imageCacheDir).writeChunk(p.checksum, p.offset, Buffer.from(p.data, 'base64')),
  commitImage: (d, p) => new ImageCache(d.imageCacheDir).commit(p.checksum, p.sizeBytes),
  readSnapshotChunk: async (d, p) => {
    const { data, sizeBytes } = await new SnapshotFiles(d.snapshotDir).read(p.imageName, p.offset, p.length);
    return { data: data.toString('base64'), sizeBytes };
  },
  deleteSnapshot: (d, p) => new SnapshotFiles(d.snapshotDir).remove(p.imageName),
  migrateReceive: (d, p, ctx) => d.migrateReceive(p.spec, ctx),
  receiveDisk: (d, p, ctx) => d.receiveDisk(p.name, ctx),
  sendDisk: (d, p, ctx) => d.sendDisk(p.name, p.target, ctx),
  resizeVm: (d, p, ctx) => d.resizeVm(p.name, { vcpus: p.vcpus, memoryMb: p.memoryMb, diskGb: p.diskGb }, ctx),
  migrateSend: (d, p, ctx) => d.migrateSend(p.name, p.target, ctx),
  listPorts: (d) => dataPlane(d).listPorts(),
  plugPort: (d, p, ctx) => dataPlane(d).plugPort(p.port, ctx),
  unplugPort: (d, p, ctx) => dataPlane(d).unplugPort(p.portId, ctx),
  setPortRules: (d, p, ctx) => dataPlane(d).setPortRules(p.ports, ctx),
  setFloatingAddresses: (d, p, ctx) => dataPlane(d).setFloatingAddresses(p.portId, p.floatingAddresses, ctx),
  setGroupMembers: (d, p, ctx) => dataPlane(d).setGroupMembers(p.groups, ctx),
};
