import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { gql, subscribeSse, type Collected } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { testRuntime } from './support/projectionFixtures.js';

const ADMIN = `admin-${randomUUID()}`;
const VOLUME_FIELDS = 'id name projectId sizeGb state task device attachedTo { id name } snapshots { id name state sizeGb volumeId }';

describe('volumes over the GraphQL API, on real PostgreSQL, Temporal and a sim host agent', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let api: { url: string; close(): Promise<void> };
  let url: string;
  const tokens = { aMember: '', aReader: '', bMember: '' };
  let flavorId: string;
  let imageId: string;
  const open: Collected<unknown>[] = [];

  const ok = async (token: string, query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(url, token, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };
  const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;
  const volume = async (token: string, id: string) => (await gql(url, token, `query($id: ID!) { volume(id: $id) { ${VOLUME_FIELDS} } }`, { id })).data?.volume;
  const settledOperation = (token: string, id: string) =>
    expect
      .poll(async () => (await gql(url, token, `query($id: ID!) { operation(id: $id) { status } }`, { id })).data?.operation?.status, { timeout: 60_000, interval: 100 })
      .toBe('SUCCEEDED');

  beforeAll(async () => {
    rt = await testRuntime('volumes_api', { adminToken: ADMIN });
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
    api = await startApi(rt, { port: 0 });
    url = api.url;
    await ok(ADMIN, `mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
      i: { name: 'sim-1', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
    });
    flavorId = (await ok(ADMIN, `mutation { createFlavor(input: {name: "t1.tiny", vcpus: 1, memoryMb: 256, diskGb: 1}) { flavor { id } } }`)).createFlavor.flavor.id;
    imageId = (await ok(ADMIN, `mutation { registerImage(input: {name: "cirros", format: "qcow2", sizeBytes: 1}) { image { id } } }`)).registerImage.image.id;
    const project = async (name: string) => (await ok(ADMIN, `mutation($n: String!) { createProject(input: {name: $n}) { project { id } } }`, { n: name })).createProject.project.id as string;
    const token = async (projectId: string, role: string) =>
      (await ok(ADMIN, `mutation($p: ID!, $r: Role!) { createToken(input: {projectId: $p, role: $r}) { token } }`, { p: projectId, r: role })).createToken.token as string;
    const a = await project('vol-project-a');
    const b = await project('vol-project-b');
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

  it('create, attach and snapshot through the API: volume(id), volumes, Instance.volumes with device, Volume.attachedTo, volumeChanged', async () => {
    const sub = subscribeSse<{ volumeChanged: { id: string; state: string } }>(url, tokens.aMember, `subscription { volumeChanged { id state } }`);
    const stranger = subscribeSse<{ volumeChanged: { id: string } }>(url, tokens.bMember, `subscription { volumeChanged { id state } }`);
    open.push(sub, stranger);
    await sleep(500); // both subscriptions registered before the create

    const created = await ok(tokens.aMember, `mutation { createVolume(input: {name: "data", sizeGb: 1}) { operation { id kind status resourceId } volume { id state task } } }`);
    const { operation, volume: v } = created.createVolume;
    expect(operation).toMatchObject({ kind: 'CREATE_VOLUME', status: 'PENDING', resourceId: v.id });
    expect(v).toMatchObject({ state: 'CREATING', task: 'CREATE_VOLUME' });
    await expect.poll(async () => (await volume(tokens.aMember, v.id))?.state, { timeout: 60_000, interval: 100 }).toBe('AVAILABLE');
    await expect.poll(() => sub.items.some((r) => r.data?.volumeChanged.id === v.id && r.data?.volumeChanged.state === 'AVAILABLE'), { timeout: 10_000 }).toBe(true);

    const boot = await ok(tokens.aMember, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } instance { id } } }`, { i: { name: 'vm-1', flavorId, imageId } });
    const instanceId = boot.bootInstance.instance.id as string;
    await settledOperation(tokens.aMember, boot.bootInstance.operation.id);
    const attach = await ok(tokens.aMember, `mutation($i: AttachVolumeInput!) { attachVolume(input: $i) { operation { id kind } volume { state } instance { id task } } }`, {
      i: { instanceId, volumeId: v.id },
    });
    expect(attach.attachVolume).toMatchObject({ operation: { kind: 'ATTACH_VOLUME' }, volume: { state: 'ATTACHING' }, instance: { id: instanceId, task: 'ATTACH_VOLUME' } });
    // IN_USE lands a moment before the task is released (two events, applied one by one): wait for both.
    await expect.poll(async () => { const now = await volume(tokens.aMember, v.id); return `${now?.state}:${now?.task}`; }, { timeout: 60_000, interval: 100 }).toBe('IN_USE:null');
    expect(await volume(tokens.aMember, v.id)).toMatchObject({ device: 'vdb', attachedTo: { id: instanceId, name: 'vm-1' }, task: null });
    await expect
      .poll(async () => (await ok(tokens.aMember, `query($id: ID!) { instance(id: $id) { volumes { id device } } }`, { id: instanceId })).instance.volumes, { timeout: 10_000 })
      .toEqual([{ id: v.id, device: 'vdb' }]);
    expect((await ok(tokens.aMember, `{ volumes { id state } }`)).volumes).toEqual([{ id: v.id, state: 'IN_USE' }]);

    const busyDelete = await gql(url, tokens.aMember, `mutation($id: ID!) { deleteVolume(input: {id: $id}) { operation { id } } }`, { id: v.id });
    expect(codeOf(busyDelete)).toBe('CONFLICT');

    const detach = await ok(tokens.aMember, `mutation($i: DetachVolumeInput!) { detachVolume(input: $i) { operation { id } } }`, { i: { instanceId, volumeId: v.id } });
    await settledOperation(tokens.aMember, detach.detachVolume.operation.id);
    const snap = await ok(tokens.aMember, `mutation($i: SnapshotVolumeInput!) { snapshotVolume(input: $i) { operation { id kind } } }`, { i: { volumeId: v.id, name: 'nightly' } });
    expect(snap.snapshotVolume.operation.kind).toBe('SNAPSHOT_VOLUME');
    await settledOperation(tokens.aMember, snap.snapshotVolume.operation.id);
    await expect.poll(async () => (await volume(tokens.aMember, v.id))?.snapshots, { timeout: 10_000 }).toEqual([
      expect.objectContaining({ name: 'nightly', state: 'AVAILABLE', sizeGb: 1, volumeId: v.id }),
    ]);

    // Project B heard nothing of it.
    expect(stranger.items.filter((r) => r.data?.volumeChanged.id === v.id)).toEqual([]);
  });

  it("project B sees no volume or snapshot of project A: null, an empty list, NOT_FOUND on every mutation; a reader is FORBIDDEN", async () => {
    const created = await ok(tokens.aMember, `mutation { createVolume(input: {name: "secret", sizeGb: 1}) { operation { id } volume { id } } }`);
    const id = created.createVolume.volume.id as string;
    await settledOperation(tokens.aMember, created.createVolume.operation.id);
    const snap = await ok(tokens.aMember, `mutation($i: SnapshotVolumeInput!) { snapshotVolume(input: $i) { operation { id } } }`, { i: { volumeId: id, name: 's1' } });
    await settledOperation(tokens.aMember, snap.snapshotVolume.operation.id);
    await expect.poll(async () => (await volume(tokens.aMember, id))?.snapshots?.[0]?.state, { timeout: 10_000 }).toBe('AVAILABLE');
    const snapshotId = (await volume(tokens.aMember, id)).snapshots[0].id as string;

    expect(await volume(tokens.bMember, id)).toBeNull();
    expect(await volume(tokens.bMember, randomUUID())).toBeNull();
    expect((await ok(tokens.bMember, `{ volumes { id } }`)).volumes).toEqual([]);
    const tries = [
      gql(url, tokens.bMember, `mutation($id: ID!) { deleteVolume(input: {id: $id}) { operation { id } } }`, { id }),
      gql(url, tokens.bMember, `mutation($id: ID!) { snapshotVolume(input: {volumeId: $id, name: "mine"}) { operation { id } } }`, { id }),
      gql(url, tokens.bMember, `mutation($s: ID!) { createVolume(input: {name: "stolen", sizeGb: 1, snapshotId: $s}) { operation { id } } }`, { s: snapshotId }),
    ];
    for (const r of await Promise.all(tries)) expect(codeOf(r)).toBe('NOT_FOUND');
    const readerDelete = await gql(url, tokens.aReader, `mutation($id: ID!) { deleteVolume(input: {id: $id}) { operation { id } } }`, { id });
    expect(codeOf(readerDelete)).toBe('FORBIDDEN');
    expect((await volume(tokens.aMember, id)).state).toBe('AVAILABLE');
  });

  it('a volume made, snapshotted and deleted by the real workflows is billed in GB-hours from their own event times', async () => {
    const v = (await ok(tokens.aMember, `mutation { createVolume(input: {name: "billed", sizeGb: 3}) { operation { id } volume { id } } }`)).createVolume;
    await settledOperation(tokens.aMember, v.operation.id);
    const snap = await ok(tokens.aMember, `mutation($i: SnapshotVolumeInput!) { snapshotVolume(input: $i) { operation { id } } }`, { i: { volumeId: v.volume.id, name: 'billed-snap' } });
    await settledOperation(tokens.aMember, snap.snapshotVolume.operation.id);
    const snapshotId = (await volume(tokens.aMember, v.volume.id)).snapshots[0].id as string;
    const del = await ok(tokens.aMember, `mutation($id: ID!) { deleteVolume(input: {id: $id}) { operation { id } } }`, { id: v.volume.id });
    await settledOperation(tokens.aMember, del.deleteVolume.operation.id);

    // What the records must add up to, from the log alone: the events' own times.
    const at = async (type: string) =>
      Date.parse((await rt.db.query<{ at: string }>(`SELECT data->>'at' AS at FROM events WHERE stream_id = $1 AND type = $2`, [`volume-${v.volume.id}`, type]))[0]!.at);
    const [created, snapshotted, deleted] = [await at('VolumeCreated'), await at('VolumeSnapshotted'), await at('VolumeDeleted')];
    const window = { from: new Date(created - 86_400_000).toISOString(), to: new Date(deleted + 86_400_000).toISOString() };
    const query = `query($f: DateTime!, $t: DateTime!) { usage(from: $f, to: $t) { records { resourceId resourceType usageType quantity unit start end } } }`;
    type Rec = { resourceId: string; resourceType: string; usageType: string; quantity: number; unit: string; start: string; end: string };
    const recordsOf = async (id: string) => ((await ok(tokens.aMember, query, { f: window.from, t: window.to })).usage.records as Rec[]).filter((r) => r.resourceId === id);
    await expect.poll(async () => (await recordsOf(snapshotId)).length, { timeout: 60_000, interval: 100 }).toBeGreaterThan(0);
    const sum = (records: Rec[]) => records.reduce((total, r) => total + r.quantity, 0);
    const vol = await recordsOf(v.volume.id);
    expect(new Set(vol.map((r) => `${r.resourceType} ${r.usageType} ${r.unit}`))).toEqual(new Set(['volume VOLUME GB_HOURS']));
    expect(vol[0]!.start).toBe(new Date(created).toISOString());
    expect(vol.at(-1)!.end).toBe(new Date(deleted).toISOString());
    expect(sum(vol)).toBeCloseTo((3 * (deleted - created)) / 3_600_000, 9);
    const snaps = await recordsOf(snapshotId);
    expect(new Set(snaps.map((r) => `${r.resourceType} ${r.usageType} ${r.unit}`))).toEqual(new Set(['volumeSnapshot VOLUME_SNAPSHOT GB_HOURS']));
    expect(sum(snaps)).toBeCloseTo((3 * (deleted - snapshotted)) / 3_600_000, 9);
    // Another project sees none of it.
    expect((await ok(tokens.bMember, query, { f: window.from, t: window.to })).usage.records).toEqual([]);
  });

  it('bad input is BAD_USER_INPUT with zod issues and writes nothing', async () => {
    const before = (await ok(tokens.aMember, `{ volumes { id } }`)).volumes.length;
    for (const input of ['{name: "zero", sizeGb: 0}', '{name: "bad name!", sizeGb: 1}', '{name: "huge", sizeGb: 100000}']) {
      const r = await gql(url, tokens.aMember, `mutation { createVolume(input: ${input}) { operation { id } } }`);
      expect(codeOf(r), input).toBe('BAD_USER_INPUT');
      expect(r.errors?.[0]?.extensions).toHaveProperty('issues');
    }
    const badAttach = await gql(url, tokens.aMember, `mutation { attachVolume(input: {instanceId: "not-a-uuid", volumeId: "x"}) { operation { id } } }`);
    expect(codeOf(badAttach)).toBe('BAD_USER_INPUT');
    expect((await ok(tokens.aMember, `{ volumes { id } }`)).volumes.length).toBe(before);
    const [row] = await rt.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE type = 'VolumeCreateRequested' AND data->>'name' IN ('zero', 'bad name!', 'huge')`);
    expect(row!.n).toBe(0);
  });
});
