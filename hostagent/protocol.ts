import { z } from 'zod';
import {
  AgentErrorCode,
  HostCapacity,
  MigrationResult,
  MigrationTarget,
  PoolVolume,
  Progress,
  SnapshotResult,
  VmInfo,
  VmName,
  VmSample,
  VmSpec,
  VolumeId,
} from './driver.js';
import { GroupMembers, PluggedPort, PortFloating, PortId, PortInfo, PortRules, PortSpec } from './network.js';

/**
 * Host-agent protocol v1: newline-delimited JSON over the SSH subsystem `stratus-agent-v1`.
 *
 *   request   {id, method, params, idempotencyKey?, traceparent?}
 *   progress  {id, progress: {percent?, message}}      (zero or more, long calls only)
 *   response  {id, result} | {id, error: {code, message, retryable}}
 *
 * Requests on one channel run concurrently; responses are matched by id, not by order.
 * Every mutating method needs an idempotencyKey; a repeat returns the first outcome.
 */
export const PROTOCOL_VERSION = 1;
export const SUBSYSTEM = 'stratus-agent-v1';
/** A longer line is refused without being buffered whole. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

export const RequestId = z.union([z.string().min(1).max(128), z.number().int()]);
export type RequestId = z.infer<typeof RequestId>;

export const IdempotencyKey = z.string().min(1).max(200);
/** W3C trace context header value, carried into the agent's logs. */
export const Traceparent = z.string().regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);

export const Request = z.object({
  id: RequestId,
  method: z.string().min(1).max(64),
  params: z.unknown().optional(),
  idempotencyKey: IdempotencyKey.optional(),
  traceparent: Traceparent.optional(),
});
export type Request = z.infer<typeof Request>;

export const WireError = z.object({ code: AgentErrorCode, message: z.string(), retryable: z.boolean() });
export type WireError = z.infer<typeof WireError>;

export const Response = z.union([
  z.object({ id: RequestId, progress: Progress }),
  z.object({ id: RequestId, result: z.unknown() }),
  z.object({ id: RequestId.nullable(), error: WireError }),
]);
export type Response = z.infer<typeof Response>;

const byName = z.object({ name: VmName });
const ImageChecksum = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in hex');
/** Bytes of an image per putImageChunk: base64 of it stays well under MAX_MESSAGE_BYTES. */
export const IMAGE_CHUNK_BYTES = 512 * 1024;
const IMAGE_CHUNK_BASE64 = Math.ceil(IMAGE_CHUNK_BYTES / 3) * 4;
const vmResult = VmInfo;

export const HostInfo = HostCapacity.extend({ agentVersion: z.string(), protocolVersion: z.number().int() });
export type HostInfo = z.infer<typeof HostInfo>;

const method = <P extends z.ZodType, R extends z.ZodType>(params: P, result: R, mutating: boolean) => ({
  params,
  result,
  mutating,
});

/** Every v1 method: its params, its result, and whether it changes anything (then it needs a key). */
export const methods = {
  /** Stops waiting for request `id` on this channel and aborts its driver call (the client's AbortSignal). */
  cancel: method(z.object({ id: RequestId }), z.object({ cancelled: z.boolean() }), false),
  ping: method(z.object({}).default({}), z.object({ pong: z.literal(true) }), false),
  hostInfo: method(z.object({}).default({}), HostInfo, false),
  listVms: method(z.object({}).default({}), z.object({ vms: z.array(VmInfo) }), false),
  getVm: method(byName, vmResult, false),
  consoleLog: method(
    byName.extend({ lines: z.number().int().min(1).max(10_000).default(100) }),
    z.object({ text: z.string() }),
    false,
  ),
  sampleVms: method(z.object({}).default({}), z.object({ samples: z.array(VmSample) }), false),
  createVm: method(z.object({ spec: VmSpec }), vmResult, true),
  startVm: method(byName, vmResult, true),
  stopVm: method(byName.extend({ force: z.boolean().default(false) }), vmResult, true),
  rebootVm: method(byName.extend({ hard: z.boolean().default(false) }), vmResult, true),
  pauseVm: method(byName, vmResult, true),
  unpauseVm: method(byName, vmResult, true),
  suspendVm: method(byName, vmResult, true),
  resumeVm: method(byName, vmResult, true),
  destroyVm: method(byName, z.object({ destroyed: z.boolean() }), true),
  snapshotVm: method(byName.extend({ imageName: VmName }), SnapshotResult, true),
  attachVolume: method(
    byName.extend({ volumeId: z.string().min(1).max(128), sizeGb: z.number().int().min(1).max(65536) }),
    vmResult,
    true,
  ),
  detachVolume: method(byName.extend({ volumeId: z.string().min(1).max(128) }), vmResult, true),
  createVolume: method(
    z.object({ volumeId: VolumeId, sizeGb: z.number().int().min(1).max(65536), fromSnapshotId: VolumeId.optional() }),
    PoolVolume,
    true,
  ),
  deleteVolume: method(z.object({ volumeId: VolumeId, snapshotIds: z.array(VolumeId).max(1000).default([]) }), z.object({ deleted: z.boolean() }), true),
  snapshotVolume: method(z.object({ volumeId: VolumeId, snapshotId: VolumeId }), PoolVolume, true),
  /** The host's image cache (hostagent/imageCache.ts): whether it holds an image, and sending it one. */
  hasImage: method(z.object({ checksum: ImageChecksum }), z.object({ present: z.boolean(), path: z.string(), sizeBytes: z.number().int() }), false),
  putImageChunk: method(
    z.object({ checksum: ImageChecksum, offset: z.number().int().min(0), data: z.string().max(IMAGE_CHUNK_BASE64) }),
    z.object({ written: z.number().int() }),
    true,
  ),
  commitImage: method(z.object({ checksum: ImageChecksum, sizeBytes: z.number().int().min(0) }), z.object({ path: z.string(), sizeBytes: z.number().int() }), true),
  /** An instance snapshot written by snapshotVm, read by the controller chunk by chunk (hostagent/snapshotFiles.ts). */
  readSnapshotChunk: method(
    z.object({ imageName: VmName, offset: z.number().int().min(0), length: z.number().int().min(1).max(IMAGE_CHUNK_BYTES).default(IMAGE_CHUNK_BYTES) }),
    z.object({ data: z.string(), sizeBytes: z.number().int() }),
    false,
  ),
  /** Removes a snapshot once the controller holds it (or gave up on it); one that is not there is fine. */
  deleteSnapshot: method(z.object({ imageName: VmName }), z.object({ deleted: z.boolean() }), true),
  migrateReceive: method(z.object({ spec: VmSpec }), MigrationTarget, true),
  /** A stopped VM's new vCPUs, memory and disk (a disk only grows); it takes effect at the next start. */
  resizeVm: method(byName.extend(VmSpec.pick({ vcpus: true, memoryMb: true, diskGb: true }).shape), vmResult, true),
  migrateSend: method(byName.extend({ target: MigrationTarget }), MigrationResult, true),
  // Networking (hostagent/network.ts).
  listPorts: method(z.object({}).default({}), z.object({ ports: z.array(PortInfo), groups: z.record(z.string(), z.array(z.string())) }), false),
  plugPort: method(z.object({ port: PortSpec }), PluggedPort, true),
  unplugPort: method(PortId, z.object({ unplugged: z.boolean() }), true),
  setPortRules: method(PortRules, z.object({ updated: z.number().int() }), true),
  setFloatingAddresses: method(PortFloating, PortInfo, true),
  setGroupMembers: method(GroupMembers, z.object({ updated: z.number().int() }), true),
  /** Cold migration, target side: the stopped VM defined here takes the disk sent to the returned endpoint. */
  receiveDisk: method(byName, MigrationTarget, true),
  /** Cold migration, source side: a stopped VM's disk sent to a receiveDisk endpoint. */
  sendDisk: method(byName.extend({ target: MigrationTarget }), z.object({ transferredBytes: z.number().min(0) }), true),
} as const;

export type MethodName = keyof typeof methods;
export type ParamsOf<M extends MethodName> = z.input<(typeof methods)[M]['params']>;
export type ResultOf<M extends MethodName> = z.output<(typeof methods)[M]['result']>;

export const isMethodName = (m: string): m is MethodName => Object.hasOwn(methods, m);
