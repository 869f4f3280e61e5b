import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projections, startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { gql, subscribeSse, subscribeWs, type Collected } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { dumpReadModel, testRuntime } from './support/projectionFixtures.js';

const ADMIN = `admin-${randomUUID()}`;
const INSTANCE_FIELDS = 'id name projectId state task version host { id } flavor { id name } image { id name }';

describe('the GraphQL API over HTTP, SSE and WebSocket, on real PostgreSQL, Temporal and a sim host agent', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let api: { url: string; close(): Promise<void> };
  let url: string;
  const tokens = { aMember: '', aReader: '', bMember: '' };
  let flavorId: string;
  let imageId: string;
  let instanceId: string;
  const open: Collected<unknown>[] = [];

  const admin = async (query: string, variables: Record<string, unknown>) => {
    const r = await gql(url, ADMIN, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };
  const instanceState = async (token: string, id: string) => (await gql(url, token, `query($id: ID!) { instance(id: $id) { state task } }`, { id })).data?.instance;
  const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

  beforeAll(async () => {
    rt = await testRuntime('api_main', { adminToken: ADMIN });
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
    api = await startApi(rt, { port: 0 });
    url = api.url;

    await admin(`mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id state } } }`, {
      i: { name: 'sim-1', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
    });
    flavorId = (await admin(`mutation { createFlavor(input: {name: "t1.tiny", vcpus: 1, memoryMb: 256, diskGb: 1}) { flavor { id } } }`, {})).createFlavor.flavor.id;
    imageId = (await admin(`mutation { registerImage(input: {name: "cirros-0.6", format: "qcow2", sizeBytes: 21430272}) { image { id } } }`, {})).registerImage.image.id;
    const project = async (name: string) => (await admin(`mutation($n: String!) { createProject(input: {name: $n}) { project { id name } } }`, { n: name })).createProject.project.id as string;
    const token = async (projectId: string, role: string) =>
      (await admin(`mutation($p: ID!, $r: Role!) { createToken(input: {projectId: $p, role: $r}) { token projectId role } }`, { p: projectId, r: role })).createToken.token as string;
    const a = await project('project-a');
    const b = await project('project-b');
    tokens.aMember = await token(a, 'MEMBER');
    tokens.aReader = await token(a, 'READER');
    tokens.bMember = await token(b, 'MEMBER');
  });
  afterAll(async () => {
    for (const s of open) s.stop();
    await api?.close();
    await worker?.shutdown();
    await agent?.stop();
    await runner?.stop();
    await rt?.close();
  });

  it('GET /healthz answers 200 with JSON once the database and Temporal answer, and a browser gets GraphiQL on /graphql', async () => {
    const res = await fetch(url.replace('/graphql', '/healthz'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', database: 'ok', temporal: 'ok' });
    const graphiql = await fetch(url, { headers: { accept: 'text/html' } });
    expect(graphiql.status).toBe(200);
    expect(await graphiql.text()).toContain('GraphiQL');
  });

  it('a boot reaches RUNNING, seen by a query and by instanceChanged over SSE and over WebSocket', async () => {
    const sub = `subscription { instanceChanged { ${INSTANCE_FIELDS} } }`;
    const sse = subscribeSse<{ instanceChanged: { id: string; state: string } }>(url, tokens.aMember, sub);
    const ws = subscribeWs<{ instanceChanged: { id: string; state: string } }>(url, tokens.aMember, sub);
    open.push(sse, ws);
    await sleep(500); // both subscriptions registered before the boot

    const boot = await gql(url, tokens.aMember, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id kind status workflowId } instance { id state task } } }`, {
      i: { name: 'web-1', flavorId, imageId, clientRequestId: 'boot-web-1' },
    });
    expect(boot.errors).toBeUndefined();
    const { operation, instance } = boot.data!.bootInstance;
    expect(operation).toMatchObject({ kind: 'BOOT', workflowId: `op-${operation.id}` });
    expect(instance).toMatchObject({ state: 'BUILDING', task: 'BOOT' });
    instanceId = instance.id;

    await expect.poll(() => instanceState(tokens.aMember, instanceId), { timeout: 60_000, interval: 200 }).toEqual({ state: 'RUNNING', task: null });
    const reachedRunning = (c: Collected<{ instanceChanged: { id: string; state: string } }>) =>
      c.items.some((r) => r.data?.instanceChanged.id === instanceId && r.data.instanceChanged.state === 'RUNNING');
    await expect.poll(() => reachedRunning(sse), { timeout: 10_000 }).toBe(true);
    await expect.poll(() => reachedRunning(ws), { timeout: 10_000 }).toBe(true);

    // The instance is released before the operation records its success, so wait for that too.
    const operationNow = () => gql(url, tokens.aMember, `query($id: ID!) { operation(id: $id) { status steps { name status } } }`, { id: operation.id });
    await expect.poll(async () => (await operationNow()).data?.operation.status, { timeout: 10_000 }).toBe('SUCCEEDED');
    const op = await operationNow();
    expect(op.data!.operation.steps.every((s: { status: string }) => s.status === 'SUCCEEDED')).toBe(true);
    const list = await gql(url, tokens.aMember, `{ instances(first: 10) { edges { node { id state } } pageInfo { hasNextPage } } }`);
    expect(list.data!.instances.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([instanceId]);
  });

  it("project B can neither see nor act on project A's instance: null on queries, NOT_FOUND on mutations, silence on subscriptions", async () => {
    const bInstance = subscribeWs(url, tokens.bMember, `subscription($id: ID) { instanceChanged(id: $id) { id state } }`, { id: instanceId });
    const bEvents = subscribeSse(url, tokens.bMember, `subscription { events(streamPrefix: "instance-") { streamId type } }`);
    const aEvents = subscribeSse(url, tokens.aMember, `subscription { events(streamPrefix: "instance-") { streamId type } }`);
    open.push(bInstance, bEvents, aEvents);
    await sleep(500);

    expect((await gql(url, tokens.bMember, `query($id: ID!) { instance(id: $id) { id } }`, { id: instanceId })).data).toEqual({ instance: null });
    // The same answer as for an id that does not exist at all.
    expect((await gql(url, tokens.bMember, `query($id: ID!) { instance(id: $id) { id } }`, { id: randomUUID() })).data).toEqual({ instance: null });
    expect((await gql(url, tokens.bMember, `{ instances { edges { node { id } } } }`)).data!.instances.edges).toEqual([]);
    const bStop = await gql(url, tokens.bMember, `mutation($id: ID!) { stopInstance(input: {id: $id}) { operation { id } } }`, { id: instanceId });
    expect(codeOf(bStop)).toBe('NOT_FOUND');
    const ghostStop = await gql(url, tokens.bMember, `mutation($id: ID!) { stopInstance(input: {id: $id}) { operation { id } } }`, { id: randomUUID() });
    expect(codeOf(ghostStop)).toBe('NOT_FOUND');

    // A acts; A's subscriber sees it, B's see nothing.
    const stop = await gql(url, tokens.aMember, `mutation($id: ID!) { stopInstance(input: {id: $id}) { operation { id } } }`, { id: instanceId });
    expect(stop.errors).toBeUndefined();
    await expect.poll(() => instanceState(tokens.aMember, instanceId), { timeout: 60_000, interval: 200 }).toEqual({ state: 'STOPPED', task: null });
    await expect.poll(() => aEvents.items.some((r) => (r.data as { events?: { type: string } })?.events?.type === 'InstanceStopped'), { timeout: 10_000 }).toBe(true);
    expect((await gql(url, tokens.bMember, `query($id: ID!) { operation(id: $id) { id } }`, { id: stop.data!.stopInstance.operation.id })).data).toEqual({ operation: null });
    await sleep(300);
    expect(bInstance.items).toEqual([]);
    expect(bEvents.items).toEqual([]);
  });

  it('no token and a bad token are UNAUTHENTICATED; a READER mutation and a MEMBER admin mutation are FORBIDDEN', async () => {
    expect(codeOf(await gql(url, undefined, `{ flavors { id } }`))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(url, 'stratus_not-a-real-token', `{ flavors { id } }`))).toBe('UNAUTHENTICATED');
    const noTokenSub = subscribeSse(url, '', `subscription { instanceChanged { id } }`);
    open.push(noTokenSub);
    await expect.poll(() => noTokenSub.items[0]?.errors?.[0]?.extensions?.code, { timeout: 5000 }).toBe('UNAUTHENTICATED');

    expect((await gql(url, tokens.aReader, `query($id: ID!) { instance(id: $id) { id } }`, { id: instanceId })).data).toEqual({ instance: { id: instanceId } });
    const readerStart = await gql(url, tokens.aReader, `mutation($id: ID!) { startInstance(input: {id: $id}) { operation { id } } }`, { id: instanceId });
    expect(codeOf(readerStart)).toBe('FORBIDDEN');
    expect(codeOf(await gql(url, tokens.aMember, `mutation { createProject(input: {name: "sneaky"}) { project { id } } }`))).toBe('FORBIDDEN');
    expect(codeOf(await gql(url, tokens.aMember, `{ hosts { id } }`))).toBe('FORBIDDEN');
  });

  it('bad input is BAD_USER_INPUT with zod issues and leaves no event, no workflow and no instance', async () => {
    await waitForProjections(rt);
    const count = async () => {
      const [row] = await rt.db.query<{ events: number; instances: number }>(
        'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM rm_instances) AS instances',
      );
      let workflows = 0;
      for await (const _ of rt.temporal.workflow.list({ query: `TaskQueue = "${rt.config.taskQueue}"` })) workflows++;
      return { ...row, workflows };
    };
    const before = await count();
    const bad = await gql(url, tokens.aMember, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } } }`, {
      i: { name: 'not a valid name!', flavorId: 'not-a-uuid', imageId },
    });
    expect(codeOf(bad)).toBe('BAD_USER_INPUT');
    const issues = bad.errors![0]!.extensions!.issues as { path: string[] }[];
    expect(issues.map((i) => i.path[0]).sort()).toEqual(['flavorId', 'name']);
    const badFlavor = await gql(url, ADMIN, `mutation { createFlavor(input: {name: "x", vcpus: 0, memoryMb: -1, diskGb: 1}) { flavor { id } } }`);
    expect(codeOf(badFlavor)).toBe('BAD_USER_INPUT');
    await sleep(300);
    expect(await count()).toEqual(before);
  });

  it('rebuildProjection (admin) replays each projection from the log into identical tables', async () => {
    await waitForProjections(rt);
    const tables = projections.flatMap((p) => p.tables);
    const before = await dumpReadModel(rt, tables);
    for (const p of projections) {
      const r = await gql(url, ADMIN, `mutation($n: String!) { rebuildProjection(input: {name: $n}) { projection { name eventsReplayed } } }`, { n: p.name });
      expect(r.errors).toBeUndefined();
      expect(r.data!.rebuildProjection.projection.eventsReplayed).toBeGreaterThan(0);
    }
    expect(await dumpReadModel(rt, tables)).toEqual(before);
    expect(codeOf(await gql(url, tokens.aMember, `mutation { rebuildProjection(input: {name: "instances"}) { projection { name } } }`))).toBe('FORBIDDEN');
  });
});
