import { randomUUID } from 'node:crypto';
import { eventRegistry, instanceStream, projectStream } from '../../domain/events.js';
import { PRICE_SHEET_STREAM } from '../../domain/priceSheet.js';
import { meteringClockStream, hourFloor, type UsageType } from '../../domain/usage.js';
import type { TypedNewEvent } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';

type NewEvent = TypedNewEvent<typeof eventRegistry>;
const metadata = { actor: 'test' };
const event = (type: NewEvent['type'], data: unknown): NewEvent => ({ id: randomUUID(), type, data, metadata }) as NewEvent;

export const FLAVOR = { id: randomUUID(), vcpus: 1, memoryMb: 512, diskGb: 1 };

/**
 * A scripted lifecycle whose events carry the times the test chooses, appended as the workflows would
 * append them (task started, transition, task finished), so the consumer sees the log a real one does.
 */
export function usageTimeline(rt: Runtime) {
  const append = (stream: string, events: NewEvent[]) => rt.store.append(stream, events, { expectedVersion: 'any' });
  const action = async (instanceId: string, kind: 'STOP' | 'START' | 'DELETE', type: NewEvent['type'], at: string) => {
    const operationId = randomUUID();
    await append(instanceStream(instanceId), [
      event('InstanceTaskStarted', { operationId, kind, at }),
      event(type, { operationId, at }),
      event('InstanceTaskFinished', { operationId, outcome: 'SUCCEEDED', at }),
    ]);
  };
  return {
    async project() {
      const id = randomUUID();
      await append(projectStream(id), [event('ProjectCreated', { id, name: `p-${id.slice(0, 8)}`, createdAt: new Date().toISOString() })]);
      return id;
    },
    /** Boot requested and launched at `at` (the boot's own minutes are not what this tests). */
    async boot(projectId: string, at: string, flavor = FLAVOR) {
      const instanceId = randomUUID();
      const operationId = randomUUID();
      const hostId = randomUUID();
      await append(instanceStream(instanceId), [
        event('InstanceBootRequested', { instanceId, projectId, name: `vm-${instanceId.slice(0, 8)}`, flavor, imageId: randomUUID(), networkId: null, operationId, requestedAt: at }),
        event('InstanceScheduled', { operationId, hostId, at }),
        event('InstanceLaunched', { operationId, hostId, launchedAt: at }),
        event('InstanceTaskFinished', { operationId, outcome: 'SUCCEEDED', at }),
      ]);
      return instanceId;
    },
    stop: (id: string, at: string) => action(id, 'STOP', 'InstanceStopped', at),
    start: (id: string, at: string) => action(id, 'START', 'InstanceStarted', at),
    delete: (id: string, at: string) => action(id, 'DELETE', 'InstanceDeleted', at),
    tick: (at: string) =>
      append(meteringClockStream(new Date(hourFloor(Date.parse(at))).toISOString()), [event('UsageClockTicked', { at })]),
    price: (usageType: UsageType, unitPrice: number, effectiveFrom: string, flavorId: string | null = null) =>
      append(PRICE_SHEET_STREAM, [event('PriceSet', { usageType, flavorId, unitPrice, currency: 'EUR', effectiveFrom })]),
  };
}

/** Every usage record, in a stable order, as plain values: what a rebuild must reproduce exactly. */
export async function dumpUsage(rt: Runtime) {
  return {
    records: await rt.db.query(
      `SELECT resource_id, usage_type, start_at, end_at, project_id, flavor_id, size, quantity, unit FROM usage_records
        ORDER BY resource_id, usage_type, start_at`,
    ),
    open: await rt.db.query('SELECT * FROM usage_open ORDER BY resource_id, usage_type'),
  };
}
