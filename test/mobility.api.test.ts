import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { gql } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { testRuntime } from './support/projectionFixtures.js';

const ADMIN = `admin-${randomUUID()}`;
const OPERATION = 'id kind status error { code message } steps { name status progress { percent message } } children { id kind status resourceId }';

describe('mobility through the GraphQL API, on real PostgreSQL, Temporal and two sim host agents', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  const agents: AgentProcess[] = [];
  let api: { url: string; close(): Promise<void> };
  let url: string;
  const hostIds: string[] = [];
  let instanceId: string;
  let member: string;

  const admin = async (query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(url, ADMIN, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };
  const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;
  /** Polls operation(id) as a client would until it is over. */
  const finished = async (id: string) => {
    for (;;) {
      const op = (await admin(`query($id: ID!) { operation(id: $id) { ${OPERATION} } }`, { id })).operation;
      if (op && (op.status === 'SUCCEEDED' || op.status === 'FAILED')) return op;
      await sleep(50);
    }
  };

  beforeAll(async () => {
    rt = await testRuntime('mobility_api', { adminToken: ADMIN });
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    api = await startApi(rt, { port: 0 });
    url = api.url;
    for (const name of ['gql-a', 'gql-b']) {
      const agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
      agents.push(agent);
      const { registerHost } = await admin(`mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
        i: { name, address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
      });
      hostIds.push(registerHost.host.id);
      // Boot on the first host only: the second registers once the instance is placed.
      if (hostIds.length === 1) {
        await admin(`mutation { createFlavor(input: {name: "t1.tiny", vcpus: 1, memoryMb: 256, diskGb: 1}) { flavor { id } } }`);
        await admin(`mutation { createFlavor(input: {name: "t1.small", vcpus: 1, memoryMb: 1024, diskGb: 2}) { flavor { id } } }`);
        const { flavors, registerImage } = {
          ...(await admin(`{ flavors { id name } }`)),
          ...(await admin(`mutation { registerImage(input: {name: "cirros", format: "qcow2", sizeBytes: 1}) { image { id } } }`)),
        };
        const tiny = flavors.find((f: { name: string }) => f.name === 't1.tiny').id;
        const { bootInstance } = await admin(`mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } instance { id } } }`, {
          i: { name: 'api-roamer', flavorId: tiny, imageId: registerImage.image.id },
        });
        instanceId = bootInstance.instance.id;
        expect((await finished(bootInstance.operation.id)).status).toBe('SUCCEEDED');
      }
    }
    const { createProject } = await admin(`mutation { createProject(input: {name: "other"}) { project { id } } }`);
    member = (await admin(`mutation($p: ID!) { createToken(input: {projectId: $p, role: MEMBER}) { token } }`, { p: createProject.project.id })).createToken.token;
  });
  afterAll(async () => {
    await api?.close();
    await worker?.shutdown();
    await runner?.stop();
    await Promise.all(agents.map((a) => a.stop()));
    await rt?.close();
  });

  it('migrateInstance moves the instance, and its operation shows the transfer on the migrateSend step', async () => {
    const { migrateInstance } = await admin(`mutation($i: MigrateInstanceInput!) { migrateInstance(input: $i) { operation { id kind } } }`, {
      i: { id: instanceId, targetHostId: hostIds[1] },
    });
    expect(migrateInstance.operation.kind).toBe('MIGRATE');
    const op = await finished(migrateInstance.operation.id);
    expect(op.status).toBe('SUCCEEDED');
    expect(op.steps.find((s: { name: string }) => s.name === 'migrateSend')).toMatchObject({ status: 'SUCCEEDED', progress: { percent: 100 } });
    for (;;) {
      const { instance } = await admin(`query($id: ID!) { instance(id: $id) { task host { id } } }`, { id: instanceId });
      if (instance.task === null && instance.host.id === hostIds[1]) break;
      await sleep(50);
    }
  });

  it('bad input is BAD_USER_INPUT, another project NOT_FOUND, and a member may not migrate (FORBIDDEN)', async () => {
    expect(codeOf(await gql(url, ADMIN, `mutation { migrateInstance(input: {id: "not-an-id"}) { operation { id } } }`))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(url, ADMIN, `mutation($id: ID!) { resizeInstance(input: {id: $id, flavorId: "x"}) { operation { id } } }`, { id: instanceId }))).toBe('BAD_USER_INPUT');
    const { flavors } = await admin(`{ flavors { id name } }`);
    const small = flavors.find((f: { name: string }) => f.name === 't1.small').id;
    // A domain rule's refusal carries its one issue at the field it is about, as zod's do.
    const tiny = flavors.find((f: { name: string }) => f.name === 't1.tiny').id;
    const same = await gql(url, ADMIN, `mutation($id: ID!, $f: ID!) { resizeInstance(input: {id: $id, flavorId: $f}) { operation { id } } }`, { id: instanceId, f: tiny });
    expect(codeOf(same)).toBe('BAD_USER_INPUT');
    expect(same.errors![0]!.extensions!.issues).toEqual([{ code: 'custom', path: ['flavorId'], message: `instance ${instanceId} already has flavor t1.tiny` }]);
    expect(codeOf(await gql(url, member, `mutation($id: ID!, $f: ID!) { resizeInstance(input: {id: $id, flavorId: $f}) { operation { id } } }`, { id: instanceId, f: small }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(url, member, `mutation($id: ID!) { migrateInstance(input: {id: $id}) { operation { id } } }`, { id: instanceId }))).toBe('FORBIDDEN');
  });

  it('resizeInstance gives the instance the new flavor', async () => {
    const { flavors } = await admin(`{ flavors { id name } }`);
    const small = flavors.find((f: { name: string }) => f.name === 't1.small').id;
    const { resizeInstance } = await admin(`mutation($i: ResizeInstanceInput!) { resizeInstance(input: $i) { operation { id kind } } }`, { i: { id: instanceId, flavorId: small } });
    expect(resizeInstance.operation.kind).toBe('RESIZE');
    expect((await finished(resizeInstance.operation.id)).status).toBe('SUCCEEDED');
    for (;;) {
      const { instance } = await admin(`query($id: ID!) { instance(id: $id) { task state flavor { name } } }`, { id: instanceId });
      if (instance.task === null && instance.flavor.name === 't1.small') return expect(instance.state).toBe('RUNNING');
      await sleep(50);
    }
  });

  it('setHostState(MAINTENANCE) answers with the DRAIN_HOST operation, whose children are the migrations', async () => {
    const { setHostState } = await admin(`mutation($id: ID!) { setHostState(input: {id: $id, state: MAINTENANCE}) { host { state } operation { id kind } } }`, { id: hostIds[1] });
    expect(setHostState).toMatchObject({ host: { state: 'MAINTENANCE' }, operation: { kind: 'DRAIN_HOST' } });
    const op = await finished(setHostState.operation.id);
    expect(op.status).toBe('SUCCEEDED');
    expect(op.children).toEqual([expect.objectContaining({ kind: 'MIGRATE', status: 'SUCCEEDED', resourceId: instanceId })]);
    const { host } = await admin(`query($id: ID!) { host(id: $id) { state lastHeartbeatAt } }`, { id: hostIds[1] });
    // Health checks are off in this runtime: no heartbeat was ever recorded.
    expect(host).toEqual({ state: 'MAINTENANCE', lastHeartbeatAt: null });
  });
});
