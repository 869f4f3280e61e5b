import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { eventRegistry, hostStream, instanceStream, operationStream, flavorStream, imageStream, projectStream, tokenStream } from '../../domain/events.js';
import { hashToken, type Role } from '../../domain/identity.js';
import type { TypedNewEvent } from '../../eventstore/index.js';
import { createRuntime, type Runtime } from '../../server/runtime.js';
import { createDatabase } from './postgres.js';

type NewEvent = TypedNewEvent<typeof eventRegistry>;
const metadata = { actor: 'test' };
const at = () => new Date().toISOString();

/** A Runtime on a fresh PostgreSQL database and the run's Temporal server, with its own task queue. */
export async function testRuntime(database: string, overrides: { adminToken?: string } = {}): Promise<Runtime> {
  const dataDir = mkdtempSync(join(tmpdir(), 'stratus-test-'));
  return createRuntime({
    databaseUrl: await createDatabase(inject('postgresUrl'), database),
    temporalAddress: inject('temporalAddress'),
    temporalNamespace: 'default',
    taskQueue: `test-${randomUUID()}`,
    port: 0,
    host: '127.0.0.1',
    dataDir,
    sshKeyPath: join(dataDir, 'controller_ed25519'),
    ...overrides,
  });
}

/** A second Runtime on the same database (another process, as far as locks and LISTEN go). */
export function runtimeLike(rt: Runtime): Promise<Runtime> {
  return createRuntime(rt.config);
}

const event = (type: NewEvent['type'], data: unknown): NewEvent => ({ id: randomUUID(), type, data, metadata }) as NewEvent;

/**
 * Appends domain events straight to the store, the way the write side will: the read side is tested
 * on its own, before and beside the command handlers.
 */
export function domainWriter(rt: Runtime) {
  const append = (stream: string, events: NewEvent[]) => rt.store.append(stream, events, { expectedVersion: 'any' });
  return {
    async project(name = `p-${randomUUID().slice(0, 8)}`) {
      const id = randomUUID();
      await append(projectStream(id), [event('ProjectCreated', { id, name, createdAt: at() })]);
      return id;
    },
    /** A token of `role` in `projectId`; returns the plaintext. */
    async token(projectId: string, role: Role) {
      const token = `stratus_${randomUUID()}`;
      const tokenId = randomUUID();
      await append(tokenStream(tokenId), [
        event('TokenCreated', { tokenId, tokenHash: hashToken(token), projectId, role, createdAt: at() }),
      ]);
      return token;
    },
    async flavor(name = `f-${randomUUID().slice(0, 8)}`) {
      const id = randomUUID();
      await append(flavorStream(id), [event('FlavorCreated', { id, name, vcpus: 1, memoryMb: 512, diskGb: 1, createdAt: at() })]);
      return { id, vcpus: 1, memoryMb: 512, diskGb: 1 };
    },
    async image(name = 'cirros-0.6') {
      const id = randomUUID();
      await append(imageStream(id), [
        event('ImageRegistered', { id, name, format: 'qcow2', sizeBytes: 21430272, status: 'active', registeredAt: at() }),
      ]);
      return id;
    },
    async host(name = `h-${randomUUID().slice(0, 8)}`) {
      const hostId = randomUUID();
      await append(hostStream(hostId), [
        event('HostRegistered', {
          hostId,
          name,
          address: '127.0.0.1',
          port: 2222,
          hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`,
          capacity: { vcpus: 8, memoryMb: 16384, diskGb: 100 },
          hypervisor: 'sim',
          at: at(),
        }),
      ]);
      return hostId;
    },
    /** Everything a successful boot records, across the operation, host and instance streams. */
    async bootedInstance(o: { projectId: string; hostId: string; flavor: { id: string; vcpus: number; memoryMb: number; diskGb: number }; imageId: string; name?: string }) {
      const instanceId = randomUUID();
      const operationId = randomUUID();
      const resources = { vcpus: o.flavor.vcpus, memoryMb: o.flavor.memoryMb, diskGb: o.flavor.diskGb };
      await append(operationStream(operationId), [
        event('OperationRequested', {
          operationId,
          kind: 'BOOT',
          resourceId: instanceId,
          projectId: o.projectId,
          workflowId: `op-${operationId}`,
          actor: { tokenId: 'test', projectId: o.projectId, role: 'MEMBER' },
          requestedAt: at(),
        }),
      ]);
      await append(instanceStream(instanceId), [
        event('InstanceBootRequested', {
          instanceId,
          projectId: o.projectId,
          name: o.name ?? `vm-${instanceId.slice(0, 8)}`,
          flavor: o.flavor,
          imageId: o.imageId,
          networkId: null,
          operationId,
          requestedAt: at(),
        }),
      ]);
      await append(operationStream(operationId), [
        event('OperationStarted', { runId: randomUUID(), at: at() }),
        event('OperationStepStarted', { name: 'schedule', at: at() }),
      ]);
      await append(hostStream(o.hostId), [event('HostCapacityClaimed', { instanceId, operationId, resources })]);
      await append(instanceStream(instanceId), [event('InstanceScheduled', { operationId, hostId: o.hostId, at: at() })]);
      await append(operationStream(operationId), [
        event('OperationStepFinished', { name: 'schedule', status: 'SUCCEEDED', at: at() }),
        event('OperationStepStarted', { name: 'createVm', at: at() }),
        event('OperationStepFinished', { name: 'createVm', status: 'SUCCEEDED', at: at() }),
      ]);
      await append(instanceStream(instanceId), [
        event('InstanceLaunched', { operationId, hostId: o.hostId, launchedAt: at() }),
        event('InstanceTaskFinished', { operationId, outcome: 'SUCCEEDED', at: at() }),
      ]);
      await append(operationStream(operationId), [event('OperationSucceeded', { at: at() })]);
      return { instanceId, operationId };
    },
    /** A stop that fails on the host: the instance goes to ERROR and its operation FAILED. */
    async failedStop(o: { instanceId: string; projectId: string }) {
      const operationId = randomUUID();
      await append(operationStream(operationId), [
        event('OperationRequested', {
          operationId,
          kind: 'STOP',
          resourceId: o.instanceId,
          projectId: o.projectId,
          workflowId: `op-${operationId}`,
          actor: { tokenId: 'test', projectId: o.projectId, role: 'MEMBER' },
          requestedAt: at(),
        }),
        event('OperationStarted', { runId: randomUUID(), at: at() }),
      ]);
      await append(instanceStream(o.instanceId), [
        event('InstanceTaskStarted', { operationId, kind: 'STOP', at: at() }),
        event('InstanceFailed', { operationId, code: 'INTERNAL', message: 'qmp timed out', at: at() }),
        event('InstanceTaskFinished', { operationId, outcome: 'FAILED', at: at() }),
      ]);
      const result = await append(operationStream(operationId), [event('OperationFailed', { code: 'INTERNAL', message: 'qmp timed out', at: at() })]);
      return { operationId, lastEvent: result.events[result.events.length - 1]! };
    },
  };
}

/** Every row of every read-model table, in key order: what "identical after a rebuild" compares. */
export async function dumpReadModel(rt: Runtime, tables: readonly string[]): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const table of tables) out[table] = await rt.db.query(`SELECT * FROM ${table} ORDER BY 1`);
  return out;
}
