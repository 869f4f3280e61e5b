import { Client, Connection } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client/index.js';
import { startTracing } from './telemetry.js';
import { eventRegistry } from '../domain/events.js';
import { streamSnapshotMigrations } from '../activities/events.js';
import { hostHeartbeatMigrations } from '../activities/hostHeartbeats.js';
import { portIndexMigrations } from '../activities/portIndex.js';
import { hostInventoryMigrations, refreshHostInventory } from '../activities/hostInventory.js';
import { migrate, openDatabase, openEventStore, type Database, type EventStore } from '../eventstore/index.js';
import { HostAgentPool } from '../hostagent/hostAgentPool.js';
import type { RuntimeConfig } from './config.js';
import { loadOrCreateControllerKey } from './controllerKey.js';

export type { RuntimeConfig } from './config.js';

/** What every role shares: one database pool, the event store, a Temporal client, the agent pool. */
export interface Runtime {
  config: RuntimeConfig;
  db: Database;
  store: EventStore<typeof eventRegistry>;
  temporal: Client;
  /**
   * Set while a worker on the runtime's task queue runs in this process (`npm start`, tests, benches):
   * a client on that worker's own connection, so operations start with Temporal's eager workflow start
   * (the first workflow task comes back in the start's reply, to this worker, instead of through the
   * server's matching). Absent in an API process without a worker: starts go through `temporal`.
   */
  eagerStarter?: Client;
  agents: HostAgentPool;
  close(): Promise<void>;
}

/**
 * The client to start a workflow on the runtime's task queue with, and the start options that go with
 * it: eager beside this process's own worker (`eagerStarter`), through the server's matching otherwise.
 */
export function workflowStarter(rt: Pick<Runtime, 'temporal' | 'eagerStarter'>): { client: Client; startOptions: { requestEagerStart?: true } } {
  return rt.eagerStarter ? { client: rt.eagerStarter, startOptions: { requestEagerStart: true } } : { client: rt.temporal, startOptions: {} };
}

export async function createRuntime(config: RuntimeConfig): Promise<Runtime> {
  const key = loadOrCreateControllerKey(config.sshKeyPath);
  const db = await openDatabase(config.databaseUrl ? { url: config.databaseUrl } : { pgliteDir: config.pgliteDir });
  try {
    const store = await openEventStore(db, eventRegistry);
    await migrate(db, hostInventoryMigrations);
    await migrate(db, streamSnapshotMigrations);
    await migrate(db, hostHeartbeatMigrations);
    await migrate(db, portIndexMigrations);
    await refreshHostInventory({ db, store });
    const connection = await Connection.connect({ address: config.temporalAddress });
    const tracing = await startTracing('stratus');
    // Traced: the workflow start carries the caller's span to the workflow (a header Temporal keeps).
    const interceptors = tracing ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : undefined;
    const temporal = new Client({ connection, namespace: config.temporalNamespace, ...(interceptors ? { interceptors } : {}) });
    const agents = new HostAgentPool({ privateKey: key.privateKey });
    let closing: Promise<void> | undefined;
    return {
      config,
      db,
      store,
      temporal,
      agents,
      close: () =>
        (closing ??= (async () => {
          agents.close();
          await connection.close().catch(() => {});
          await db.close();
        })()),
    };
  } catch (e) {
    await db.close().catch(() => {});
    throw e;
  }
}
