import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageStream } from '../domain/events.js';
import { startProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import { imageStore } from '../server/imageStore.js';
import type { Runtime } from '../server/runtime.js';
import { gql, subscribeSse, type Collected } from './support/graphqlClient.js';
import { testRuntime } from './support/projectionFixtures.js';

const ADMIN = `admin-${randomUUID()}`;
const IMAGE_FIELDS = 'id name format status checksum sizeBytes visibility projectId errorReason';

describe('the image service (Glance) over HTTP, on real PostgreSQL and qemu-img', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let api: { url: string; close(): Promise<void> };
  let base: string;
  let work: string;
  const tokens = { a: '', b: '', aReader: '' };
  const open: Collected<unknown>[] = [];

  const ok = async (token: string, query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(api.url, token, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };
  const image = async (token: string, id: string) => (await gql(api.url, token, `query($id: ID!) { image(id: $id) { ${IMAGE_FIELDS} } }`, { id })).data?.image;
  const create = async (token: string, name: string, format = 'qcow2', visibility?: string) =>
    (await ok(token, `mutation($i: CreateImageInput!) { createImage(input: $i) { image { ${IMAGE_FIELDS} } uploadUrl } }`, { i: { name, format, ...(visibility ? { visibility } : {}) } }))
      .createImage as { image: { id: string; status: string }; uploadUrl: string };
  const put = (token: string, path: string, body: Buffer) =>
    fetch(base + path, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: new Uint8Array(body) });
  const storeFiles = () => {
    const s = imageStore(rt);
    return {
      blobs: existsSync(s.blobDir) ? readdirSync(s.blobDir) : [],
      tmp: existsSync(s.tmpDir) ? readdirSync(s.tmpDir) : [],
    };
  };
  const qcow2 = (name: string, size = '64M') => {
    const path = join(work, name);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
    return readFileSync(path);
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'stratus-images-'));
    rt = await testRuntime('images_api', { adminToken: ADMIN });
    runner = await startProjections(rt);
    api = await startApi(rt, { port: 0 });
    base = api.url.replace(/\/graphql$/, '');
    const project = async (name: string) => (await ok(ADMIN, `mutation($n: String!) { createProject(input: {name: $n}) { project { id } } }`, { n: name })).createProject.project.id as string;
    const token = async (projectId: string, role: string) =>
      (await ok(ADMIN, `mutation($p: ID!, $r: Role!) { createToken(input: {projectId: $p, role: $r}) { token } }`, { p: projectId, r: role })).createToken.token as string;
    const a = await project('img-a');
    tokens.a = await token(a, 'MEMBER');
    tokens.aReader = await token(a, 'READER');
    tokens.b = await token(await project('img-b'), 'MEMBER');
  });
  afterAll(async () => {
    for (const c of open) c.stop();
    await api?.close();
    await runner?.stop();
    await rt?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('an uploaded qcow2 goes QUEUED → ACTIVE with its sha256, lands in the content-addressed store, and downloads byte for byte', async () => {
    const bytes = qcow2('disk.qcow2');
    const sha = createHash('sha256').update(bytes).digest('hex');
    const { image: made, uploadUrl } = await create(tokens.a, 'my-disk');
    expect(made).toMatchObject({ status: 'QUEUED', visibility: 'PRIVATE', format: 'qcow2', checksum: null });
    expect(uploadUrl).toBe(`/images/${made.id}/file`);

    const res = await put(tokens.a, uploadUrl, bytes);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ACTIVE', checksum: sha, sizeBytes: bytes.length });
    await expect.poll(async () => (await image(tokens.a, made.id))?.status, { timeout: 10_000 }).toBe('ACTIVE');
    expect(await image(tokens.a, made.id)).toMatchObject({ checksum: sha, sizeBytes: bytes.length });
    expect(storeFiles()).toEqual({ blobs: [sha], tmp: [] });

    const down = await fetch(base + uploadUrl, { headers: { authorization: `Bearer ${tokens.a}` } });
    expect(down.status).toBe(200);
    expect(createHash('sha256').update(Buffer.from(await down.arrayBuffer())).digest('hex')).toBe(sha);

    // A second upload to an ACTIVE image is refused; the store is unchanged.
    expect((await put(tokens.a, uploadUrl, bytes)).status).toBe(409);
  });

  it('bytes that are not the claimed format leave the image ERROR with the reason and nothing in the store', async () => {
    const before = storeFiles();
    const { image: made, uploadUrl } = await create(tokens.a, 'not-really-qcow2');
    const res = await put(tokens.a, uploadUrl, randomBytes(256 * 1024));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'BAD_USER_INPUT', message: expect.stringMatching(/not qcow2/) });
    await expect.poll(async () => (await image(tokens.a, made.id))?.status, { timeout: 10_000 }).toBe('ERROR');
    expect((await image(tokens.a, made.id)).errorReason).toMatch(/the bytes are raw, not qcow2/);
    expect(storeFiles()).toEqual(before);

    // raw claimed for a qcow2 is a mismatch too: qemu-img's detection decides, not the client's word.
    const { uploadUrl: rawUrl } = await create(tokens.a, 'claims-raw', 'raw');
    expect((await put(tokens.a, rawUrl, qcow2('other.qcow2', '32M'))).status).toBe(400);
    expect(storeFiles()).toEqual(before);
  });

  it('an upload interrupted half way leaves the image QUEUED (another try may follow) and no partial file', async () => {
    const before = storeFiles();
    const { image: made, uploadUrl } = await create(tokens.a, 'half-sent');
    const total = 64 * 1024 * 1024;
    await new Promise<void>((resolve) => {
      const req = request(base + uploadUrl, {
        method: 'PUT',
        headers: { authorization: `Bearer ${tokens.a}`, 'content-length': total, 'content-type': 'application/octet-stream' },
      });
      req.on('error', () => resolve());
      req.on('response', () => resolve());
      // Half the declared bytes, then the connection drops.
      const half = Buffer.alloc(total / 2, 7);
      req.write(half, () => setTimeout(() => req.destroy(), 200));
    });
    // The server's own record that the upload ended unfinished; only then is QUEUED the outcome, not the start.
    await expect.poll(async () => (await rt.store.readStream(imageStream(made.id))).map((e) => e.type).at(-1), { timeout: 10_000 }).toBe('ImageUploadAbandoned');
    await expect.poll(async () => (await image(tokens.a, made.id))?.status, { timeout: 10_000 }).toBe('QUEUED');
    expect(storeFiles()).toEqual(before);
    // The same image takes a whole upload afterwards.
    expect((await put(tokens.a, uploadUrl, qcow2('retry.qcow2', '16M'))).status).toBe(200);
  });

  it("project B sees no PRIVATE image of A: null, not listed, 404 on its file; PUBLIC is an admin's call and everyone's to see", async () => {
    const { image: made, uploadUrl } = await create(tokens.a, 'a-only');
    expect((await put(tokens.a, uploadUrl, qcow2('a-only.qcow2', '8M'))).status).toBe(200);
    expect(await image(tokens.b, made.id)).toBeNull();
    expect(((await ok(tokens.b, `{ images { id } }`)).images as { id: string }[]).map((i) => i.id)).not.toContain(made.id);
    expect((await fetch(base + uploadUrl, { headers: { authorization: `Bearer ${tokens.b}` } })).status).toBe(404);
    expect((await put(tokens.b, uploadUrl, Buffer.from('x'))).status).toBe(404);
    expect((await fetch(base + uploadUrl)).status).toBe(401);
    const del = await gql(api.url, tokens.b, `mutation($id: ID!) { deleteImage(input: {id: $id}) { image { id } } }`, { id: made.id });
    expect(del.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const readerDelete = await gql(api.url, tokens.aReader, `mutation($id: ID!) { deleteImage(input: {id: $id}) { image { id } } }`, { id: made.id });
    expect(readerDelete.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const pub = await gql(api.url, tokens.a, `mutation { createImage(input: {name: "for-all", format: "qcow2", visibility: "PUBLIC"}) { image { id } } }`);
    expect(pub.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const shared = await create(ADMIN, 'for-all', 'qcow2', 'PUBLIC');
    await expect.poll(async () => (await image(tokens.b, shared.image.id))?.visibility, { timeout: 10_000 }).toBe('PUBLIC');
    const bad = await gql(api.url, tokens.a, `mutation { createImage(input: {name: "iso", format: "iso"}) { image { id } } }`);
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('deleteImage marks it DELETED and removes its bytes unless another image holds the same bytes', async () => {
    const bytes = qcow2('shared.qcow2', '4M');
    const sha = createHash('sha256').update(bytes).digest('hex');
    const first = await create(tokens.a, 'twin-1');
    const second = await create(tokens.a, 'twin-2');
    for (const i of [first, second]) expect((await put(tokens.a, i.uploadUrl, bytes)).status).toBe(200);
    await ok(tokens.a, `mutation($id: ID!) { deleteImage(input: {id: $id}) { image { status } } }`, { id: first.image.id });
    expect(storeFiles().blobs).toContain(sha);
    await expect.poll(async () => await image(tokens.a, first.image.id), { timeout: 10_000 }).toBeNull();
    expect((await fetch(base + first.uploadUrl, { headers: { authorization: `Bearer ${tokens.a}` } })).status).toBe(404);
    const last = await ok(tokens.a, `mutation($id: ID!) { deleteImage(input: {id: $id}) { image { status } } }`, { id: second.image.id });
    expect(last.deleteImage.image.status).toBe('DELETED');
    expect(storeFiles().blobs).not.toContain(sha);

    // Metering: each image was billed its bytes' GB-hours from its ImageUploaded to its ImageDeleted, by their own times.
    const times = async (id: string) =>
      Object.fromEntries(
        (await rt.db.query<{ type: string; at: string }>(`SELECT type, data->>'at' AS at FROM events WHERE stream_id = $1 AND type IN ('ImageUploaded', 'ImageDeleted')`, [`image-${id}`])).map(
          (r) => [r.type, Date.parse(r.at)],
        ),
      );
    for (const id of [first.image.id, second.image.id]) {
      const { ImageUploaded: uploaded, ImageDeleted: deleted } = await times(id);
      await expect
        .poll(async () => (await rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_records WHERE resource_id = $1', [id]))[0]!.n, { timeout: 30_000 })
        .toBeGreaterThan(0);
      const records = await rt.db.query<{ usage_type: string; unit: string; start_at: Date; end_at: Date; quantity: number }>(
        'SELECT usage_type, unit, start_at, end_at, quantity FROM usage_records WHERE resource_id = $1 ORDER BY start_at',
        [id],
      );
      expect(new Set(records.map((r) => `${r.usage_type} ${r.unit}`))).toEqual(new Set(['IMAGE GB_HOURS']));
      expect([records[0]!.start_at.getTime(), records.at(-1)!.end_at.getTime()]).toEqual([uploaded, deleted]);
      expect(records.reduce((sum, r) => sum + r.quantity, 0)).toBeCloseTo(((bytes.length / 1024 ** 3) * (deleted! - uploaded!)) / 3_600_000, 12);
    }
  });
  it("imageChanged follows its project's upload in order to ACTIVE; another project never hears of a PRIVATE image", async () => {
    const SUB = 'subscription { imageChanged { id status checksum projectId } }';
    const mine = subscribeSse(api.url, tokens.aReader, SUB);
    const theirs = subscribeSse(api.url, tokens.b, SUB);
    open.push(mine, theirs);
    const seen = (c: Collected<unknown>, id?: string) =>
      c.items.map((i) => (i.data as { imageChanged: { id: string; status: string; checksum: string | null; projectId: string | null } }).imageChanged).filter((i) => !id || i.id === id);
    // Images made until both ends listen (a subscription registers a moment after its request).
    const warm: string[] = [];
    while (seen(mine).length === 0 || seen(theirs).length === 0) {
      warm.push((await create(tokens.a, 'warm-a')).image.id);
      await create(tokens.b, 'warm-b');
      await new Promise((r) => setTimeout(r, 100));
    }
    const bytes = qcow2('watched.qcow2', '8M');
    const { image: made, uploadUrl } = await create(tokens.a, 'watched');
    expect((await put(tokens.a, uploadUrl, bytes)).status).toBe(200);
    const sha = createHash('sha256').update(bytes).digest('hex');
    await expect.poll(() => seen(mine, made.id).at(-1)?.status, { timeout: 10_000 }).toBe('ACTIVE');
    const order = ['QUEUED', 'SAVING', 'ACTIVE'];
    const statuses = seen(mine, made.id).map((i) => i.status);
    // Each copy is read after its change: the statuses never step back, and the last carries the sha256.
    expect(statuses.map((x) => order.indexOf(x))).toEqual([...statuses.map((x) => order.indexOf(x))].sort((a, b) => a - b));
    expect(statuses.every((x) => order.includes(x))).toBe(true);
    expect(seen(mine, made.id).at(-1)!.checksum).toBe(sha);
    for (const id of [made.id, ...warm]) expect(seen(theirs, id)).toEqual([]);
    expect(seen(theirs).every((i) => i.projectId !== seen(mine, made.id)[0]!.projectId)).toBe(true);
  });
});
