import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createSelfTestActivities, selfTestEvents } from '../activities/selfTest.js';
import { openDatabase, openEventStore, type Database } from '../eventstore/index.js';
import { createDatabase } from './support/postgres.js';

const workflowsPath = fileURLToPath(new URL('../workflows/selfTest.ts', import.meta.url));

describe('the smoke workflow on the real Temporal dev server and PostgreSQL', () => {
  let db: Database;
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;

  beforeAll(async () => {
    db = await openDatabase({ url: await createDatabase(inject('postgresUrl'), 'smoke_workflow') });
    nativeConnection = await NativeConnection.connect({ address: inject('temporalAddress') });
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await connection?.close();
    await nativeConnection?.close();
    await db?.close();
  });

  async function runSelfTest(afterAppend?: (attempt: number) => void) {
    const store = await openEventStore(db, selfTestEvents);
    const taskQueue = `smoke-${randomUUID()}`;
    const worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowsPath,
      activities: createSelfTestActivities(store, afterAppend),
    });
    const streamId = `selftest-${randomUUID()}`;
    const workflowId = `selftest-${randomUUID()}`;
    const result = await worker.runUntil(
      client.workflow.execute('selfTest', { taskQueue, workflowId, args: [{ streamId, eventId: randomUUID() }] }),
    );
    return { store, streamId, workflowId, result };
  }

  it("a workflow's activity appends its event to the store, with the workflow's ids in its metadata", async () => {
    const { store, streamId, workflowId, result } = await runSelfTest();
    const events = await store.readStream(streamId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'ControllerSelfTested', version: 1, position: result.position });
    expect(events[0]!.metadata).toMatchObject({ actor: 'system', workflowId });
    expect(events[0]!.metadata.runId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('an activity retried after its append committed leaves the event in the log once', async () => {
    const { store, streamId } = await runSelfTest((attempt) => {
      if (attempt < 3) throw new Error(`simulated crash after commit, attempt ${attempt}`);
    });
    const events = await store.readStream(streamId);
    expect(events).toHaveLength(1);
  });
});
