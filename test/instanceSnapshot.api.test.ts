import { createHash, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageStream } from '../domain/events.js';
import { startProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import { imageStore } from '../server/imageStore.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { gql } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { setFaults, settled } from './support/lifecycleStack.js';
import { testRuntime } from './support/projectionFixtures.js';

/**
 * snapshotInstance through the GraphQL API on the sim driver, with everything else real (Temporal,
 * PostgreSQL, the agent over SSH, qemu-img): the host writes a real qcow2, the controller pulls it into
 * its content-addressed store, the image is PRIVATE to the instance's project with `sourceInstance`, and
 * it boots. Failures leave the image ERROR with the reason and nothing in the store or on the host.
 */
const ADMIN = `admin-${randomUUID()}`;
const IMAGE_FIELDS = 'id name format status checksum sizeBytes visibility projectId errorReason sourceInstance { id }';

describe('snapshotInstance over the API, on the sim driver', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let api: { url: string; close(): Promise<void> };
  let url: string;
  let work: string;
  const tokens = { a: '', aReader: '', b: '' };
  let projectA: string;
  let flavorId: string;
  let imageId: string;

  const ok = async (token: string, query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(url, token, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };
  const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;
  const image = async (token: string, id: string) => (await gql(url, token, `query($id: ID!) { image(id: $id) { ${IMAGE_FIELDS} } }`, { id })).data?.image;
  /** The operation once its workflow is over and the read model has caught up with its end. */
  const operation = async (id: string) => {
    const recorded = await settled(rt, id);
    const read = async () => (await ok(ADMIN, `query($id: ID!) { operation(id: $id) { status kind error { code message } steps { name status } } }`, { id })).operation;
    await expect.poll(async () => (await read())?.status, { timeout: 10_000 }).toBe(recorded.status);
    return read();
  };
  const boot = async (token: string, name: string, image: string) => {
    const r = await ok(token, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } instance { id } } }`, { i: { name, flavorId, imageId: image } });
    return { operationId: r.bootInstance.operation.id as string, instanceId: r.bootInstance.instance.id as string };
  };
  const snapshot = (token: string, id: string, imageName: string) =>
    gql(url, token, `mutation($i: SnapshotInstanceInput!) { snapshotInstance(input: $i) { operation { id kind status resourceId } instance { id task } image { ${IMAGE_FIELDS} } } }`, {
      i: { id, imageName },
    });
  const storeFiles = () => {
    const s = imageStore(rt);
    return { blobs: existsSync(s.blobDir) ? readdirSync(s.blobDir).sort() : [], tmp: existsSync(s.tmpDir) ? readdirSync(s.tmpDir) : [] };
  };
  const hostSnapshots = () => {
    const dir = join(agent.stateDir, 'sim', 'images');
    return existsSync(dir) ? readdirSync(dir) : [];
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'stratus-snapshots-'));
    rt = await testRuntime('instance_snapshots', { adminToken: ADMIN });
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
    api = await startApi(rt, { port: 0 });
    url = api.url;
    await ok(ADMIN, `mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
      i: { name: 'sim-1', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
    });
    flavorId = (await ok(ADMIN, `mutation { createFlavor(input: {name: "s1.tiny", vcpus: 1, memoryMb: 256, diskGb: 1}) { flavor { id } } }`)).createFlavor.flavor.id;
    imageId = (await ok(ADMIN, `mutation { registerImage(input: {name: "cirros", format: "qcow2", sizeBytes: 1}) { image { id } } }`)).registerImage.image.id;
    const project = async (name: string) => (await ok(ADMIN, `mutation($n: String!) { createProject(input: {name: $n}) { project { id } } }`, { n: name })).createProject.project.id as string;
    const token = async (projectId: string, role: string) =>
      (await ok(ADMIN, `mutation($p: ID!, $r: Role!) { createToken(input: {projectId: $p, role: $r}) { token } }`, { p: projectId, r: role })).createToken.token as string;
    projectA = await project('snap-a');
    tokens.a = await token(projectA, 'MEMBER');
    tokens.aReader = await token(projectA, 'READER');
    tokens.b = await token(await project('snap-b'), 'MEMBER');
  });
  afterAll(async () => {
    await api?.close();
    await worker?.shutdown();
    await agent?.stop();
    await runner?.stop();
    await rt?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('a running instance becomes a PRIVATE qcow2 image of its project with sourceInstance, pulled into the store, that boots', async () => {
    const original = await boot(tokens.a, 'web-1', imageId);
    expect((await operation(original.operationId)).status).toBe('SUCCEEDED');

    const r = await snapshot(tokens.a, original.instanceId, 'web-1 before upgrade');
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    const { operation: op, instance, image: made } = r.data!.snapshotInstance;
    expect(op).toMatchObject({ kind: 'SNAPSHOT', status: 'PENDING', resourceId: original.instanceId });
    expect(instance).toEqual({ id: original.instanceId, task: 'SNAPSHOT' });
    expect(made).toMatchObject({ name: 'web-1 before upgrade', status: 'QUEUED', visibility: 'PRIVATE', projectId: projectA, format: 'qcow2', checksum: null });

    const done = await operation(op.id);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(done.steps.map((s: { name: string }) => s.name)).toEqual(['snapshotVm', 'uploadSnapshot', 'removeHostSnapshot', 'recordSnapshot']);
    await expect.poll(async () => (await image(tokens.a, made.id))?.status, { timeout: 10_000 }).toBe('ACTIVE');
    const active = await image(tokens.a, made.id);
    expect(active).toMatchObject({ visibility: 'PRIVATE', projectId: projectA, sourceInstance: { id: original.instanceId }, errorReason: null });

    // The bytes: in the store under their sha256, downloadable, a qcow2 qemu-img reads; nothing left behind.
    expect(storeFiles()).toEqual({ blobs: [active.checksum], tmp: [] });
    expect(hostSnapshots()).toEqual([]);
    const down = await fetch(url.replace(/\/graphql$/, '') + `/images/${made.id}/file`, { headers: { authorization: `Bearer ${tokens.a}` } });
    expect(down.status).toBe(200);
    const bytes = Buffer.from(await down.arrayBuffer());
    expect(bytes.length).toBe(active.sizeBytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(active.checksum);
    writeFileSync(join(work, 'snap.qcow2'), bytes);
    expect(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', join(work, 'snap.qcow2')], { encoding: 'utf8' }))).toMatchObject({ format: 'qcow2' });

    // The instance is as it was, its task released, its history has the snapshot.
    await expect
      .poll(async () => (await ok(tokens.a, `query($id: ID!) { instance(id: $id) { state task } }`, { id: original.instanceId })).instance, { timeout: 10_000 })
      .toEqual({ state: 'RUNNING', task: null });
    const history = (await rt.store.readStream(`instance-${original.instanceId}`)).map((e) => e.type);
    expect(history).toContain('InstanceSnapshotted');

    // It boots: the host is sent the image's bytes (it caches them) before createVm.
    const copy = await boot(tokens.a, 'web-1-copy', made.id);
    const booted = await operation(copy.operationId);
    expect(booted.status, JSON.stringify(booted.error)).toBe('SUCCEEDED');
    expect(booted.steps.map((s: { name: string }) => s.name)).toContain('fetchImage');
    expect(readdirSync(join(agent.stateDir, 'image-cache'))).toContain(active.checksum);
  });

  it('another project never sees the snapshot image, and cannot snapshot the instance; a reader is FORBIDDEN; bad input writes nothing', async () => {
    const original = await boot(tokens.a, 'private-1', imageId);
    await operation(original.operationId);
    const r = await snapshot(tokens.a, original.instanceId, 'private-snap');
    const made = r.data!.snapshotInstance.image;
    expect((await operation(r.data!.snapshotInstance.operation.id)).status).toBe('SUCCEEDED');
    await expect.poll(async () => (await image(tokens.a, made.id))?.status, { timeout: 10_000 }).toBe('ACTIVE');

    expect(await image(tokens.b, made.id)).toBeNull();
    expect(((await ok(tokens.b, `{ images { id } }`)).images as { id: string }[]).map((i) => i.id)).not.toContain(made.id);
    expect((await fetch(url.replace(/\/graphql$/, '') + `/images/${made.id}/file`, { headers: { authorization: `Bearer ${tokens.b}` } })).status).toBe(404);
    const stolenBoot = await gql(url, tokens.b, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } } }`, { i: { name: 'thief', flavorId, imageId: made.id } });
    expect(codeOf(stolenBoot)).toBe('NOT_FOUND');

    const before = (await rt.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE type = 'ImageCreated'`))[0]!.n;
    expect(codeOf(await snapshot(tokens.b, original.instanceId, 'stolen'))).toBe('NOT_FOUND');
    expect(codeOf(await snapshot(tokens.aReader, original.instanceId, 'by-reader'))).toBe('FORBIDDEN');
    expect(codeOf(await snapshot(tokens.a, randomUUID(), 'nothing-there'))).toBe('NOT_FOUND');
    const blank = await snapshot(tokens.a, original.instanceId, '   ');
    expect(codeOf(blank)).toBe('BAD_USER_INPUT');
    expect(blank.errors?.[0]?.extensions).toHaveProperty('issues');
    expect(codeOf(await snapshot(tokens.a, original.instanceId, 'x'.repeat(65)))).toBe('BAD_USER_INPUT');
    expect((await rt.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE type = 'ImageCreated'`))[0]!.n).toBe(before);
  });

  it('one action at a time: a snapshot of a busy instance is a CONFLICT naming the running operation, and makes no image', async () => {
    const original = await boot(tokens.a, 'busy-1', imageId);
    await operation(original.operationId);
    await setFaults(agent, { latencyMs: 3000, latencyMethods: 'snapshotVm' });
    try {
      const first = await snapshot(tokens.a, original.instanceId, 'first');
      const firstOp = first.data!.snapshotInstance.operation.id;
      const before = (await rt.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE type = 'ImageCreated'`))[0]!.n;
      const second = await snapshot(tokens.a, original.instanceId, 'second');
      expect(codeOf(second)).toBe('CONFLICT');
      expect(second.errors?.[0]?.extensions).toMatchObject({ runningOperation: { id: firstOp, kind: 'SNAPSHOT' } });
      expect((await rt.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE type = 'ImageCreated'`))[0]!.n).toBe(before);
      expect((await operation(firstOp)).status).toBe('SUCCEEDED');
    } finally {
      await setFaults(agent, {});
    }
  });

  it('a snapshot the host fails leaves the image ERROR with the reason, nothing in the store or on the host; retryOperation takes it again', async () => {
    const original = await boot(tokens.a, 'failing-1', imageId);
    await operation(original.operationId);
    const storeBefore = storeFiles();
    await setFaults(agent, { failMethods: 'snapshotVm', failCode: 'HYPERVISOR_ERROR' });
    let opId: string;
    let made: { id: string };
    try {
      const r = await snapshot(tokens.a, original.instanceId, 'doomed');
      opId = r.data!.snapshotInstance.operation.id;
      made = r.data!.snapshotInstance.image;
      const failed = await operation(opId);
      expect(failed).toMatchObject({ status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } });
      expect(failed.steps).toEqual([{ name: 'snapshotVm', status: 'FAILED' }]);
    } finally {
      await setFaults(agent, {});
    }
    await expect.poll(async () => (await image(tokens.a, made.id))?.status, { timeout: 10_000 }).toBe('ERROR');
    expect((await image(tokens.a, made.id)).errorReason).toMatch(/injected|snapshotVm/i);
    expect(storeFiles()).toEqual(storeBefore);
    expect(hostSnapshots()).toEqual([]);
    // The instance is released and unchanged.
    await expect
      .poll(async () => (await ok(tokens.a, `query($id: ID!) { instance(id: $id) { state task } }`, { id: original.instanceId })).instance, { timeout: 10_000 })
      .toEqual({ state: 'RUNNING', task: null });
    const booting = await gql(url, tokens.a, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } } }`, { i: { name: 'from-error', flavorId, imageId: made.id } });
    expect(codeOf(booting)).toBe('CONFLICT');

    // The fault is gone: the operator runs it again, and the same image fills.
    await ok(ADMIN, `mutation($id: ID!) { retryOperation(input: {id: $id}) { operation { id status } } }`, { id: opId });
    await rt.temporal.workflow.getHandle(`op-${opId}`).result();
    expect((await operation(opId)).status).toBe('SUCCEEDED');
    await expect.poll(async () => (await image(tokens.a, made.id))?.status, { timeout: 10_000 }).toBe('ACTIVE');
    expect((await image(tokens.a, made.id)).errorReason).toBeNull();
    expect(storeFiles().tmp).toEqual([]);
    expect(hostSnapshots()).toEqual([]);
    const types = (await rt.store.readStream(imageStream(made.id))).map((e) => e.type);
    expect(types).toEqual(['ImageCreated', 'ImageFailed', 'ImageUploadStarted', 'ImageUploaded']);
  });
});
