/**
 * Storage figures, each against a baseline measured in the same run on the same disk:
 *
 * - uploadMBps: `PUT /images/<id>/file` through the API (streamed, hashed, `qemu-img info`, renamed into
 *   the store) against copyMBps, a plain copy of the same file (`fs.copyFile`, what cp does);
 *   uploadRatio = uploadMBps / copyMBps (target >= 0.5).
 * - attachP50Ms: hot-plugging a pool volume into a running QEMU guest (TCG) through a real host agent
 *   over SSH, from the request to the agent's answer (the device is on the guest's bus by then).
 *
 *   npm run bench:storage            figures as text
 *   npm run bench:storage -- --json  exactly one JSON line on stdout
 *
 * BENCH_UPLOAD_MB (default 512), BENCH_ATTACHES (default 10), BENCH_SKIP_QEMU=1 to leave attach out.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { startProjections } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { startApi } from '../server/api.js';
import { createRuntime } from '../server/runtime.js';
import { startTemporalDevServer } from '../server/temporalDevServer.js';
import { routeTemporalLogs } from '../server/temporalLogs.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';
import { buildTestGuest, waitBlock, waitBoots } from '../test/support/guest.js';
import { startAgentProcess } from '../test/support/hostagent.js';

const json = process.argv.includes('--json');
const UPLOAD_MB = Number(process.env.BENCH_UPLOAD_MB ?? 512);
const ATTACHES = Number(process.env.BENCH_ATTACHES ?? 10);
const say = (m: string) => (json ? process.stderr.write(m + '\n') : console.log(m));
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** A file of incompressible bytes (a raw image as far as qemu-img can tell). */
async function makeFile(path: string, mb: number) {
  const { randomFillSync } = await import('node:crypto');
  const chunk = Buffer.alloc(1 << 20);
  const out = createWriteStream(path);
  for (let i = 0; i < mb; i++) {
    randomFillSync(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

function putFile(url: string, token: string, path: string, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-length': size, 'content-type': 'application/octet-stream' } });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), req).catch(reject);
  });
}

async function uploadFigures() {
  routeTemporalLogs();
  const pg = await startPostgres();
  const dir = await mkdtemp(join(tmpdir(), 'stratus-bench-storage-'));
  const temporal = await startTemporalDevServer({ dataDir: dir, port: 0, say });
  const adminToken = `bench-${randomUUID()}`;
  const rt = await createRuntime({
    databaseUrl: await createDatabase(pg.url, `bench_storage_${Date.now()}`),
    temporalAddress: temporal.address,
    temporalNamespace: 'default',
    taskQueue: `bench-storage-${randomUUID()}`,
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    adminToken,
    sshKeyPath: join(dir, 'controller_ed25519'),
  });
  const projections = await startProjections(rt);
  const api = await startApi(rt, { port: 0 });
  const base = api.url.replace(/\/graphql$/, '');
  try {
    const source = join(dir, 'source.raw');
    await makeFile(source, UPLOAD_MB);
    const { size } = await stat(source);
    const copies: number[] = [];
    const uploads: number[] = [];
    for (let round_ = 0; round_ < 3; round_++) {
      const target = join(dir, `copy-${round_}.raw`);
      let t0 = performance.now();
      await copyFile(source, target);
      copies.push(performance.now() - t0);
      await rm(target);

      const { uploadUrl } = await commands.createImage(rt, bootstrapAdminCaller, { name: `bench-${round_}`, format: 'raw', visibility: 'PRIVATE' });
      t0 = performance.now();
      const status = await putFile(base + uploadUrl, adminToken, source, size);
      uploads.push(performance.now() - t0);
      if (status !== 200) throw new Error(`upload answered ${status}`);
      // The same bytes land on the same content-addressed file: remove it so every round writes it anew.
      await rm(join(dir, 'images', 'sha256'), { recursive: true, force: true });
    }
    const mb = size / 2 ** 20;
    const copyMBps = mb / (median(copies) / 1000);
    const uploadMBps = mb / (median(uploads) / 1000);
    return { uploadMB: round(mb, 0), copyMBps: round(copyMBps), uploadMBps: round(uploadMBps), uploadRatio: round(uploadMBps / copyMBps, 2) };
  } finally {
    await api.close();
    await projections.stop();
    await rt.close();
    await temporal.stop();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function attachFigures() {
  const guest = buildTestGuest();
  const pool = await mkdtemp(join(tmpdir(), 'stratus-bench-pool-'));
  const agent = await startAgentProcess({ driver: 'qemu', driverOptions: { accel: 'tcg', capacity: '4,4096,50', storagePool: pool } });
  const client = agent.client();
  const call = <M extends Parameters<typeof client.call>[0]>(method: M, params: Parameters<typeof client.call<M>>[1]) =>
    client.call(method, params, { idempotencyKey: randomUUID(), timeoutMs: 120_000 });
  const consoleSource = { consoleLog: (name: string, opts: { lines: number }) => call('consoleLog', { name, lines: opts.lines }) };
  try {
    await call('createVm', { spec: { name: 'bench', vcpus: 1, memoryMb: 256, diskGb: 0, boot: { kind: 'kernel', kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline: guest.cmdline } } });
    await call('startVm', { name: 'bench' });
    await waitBoots(consoleSource, 'bench', 1);
    await call('createVolume', { volumeId: 'bench-vol', sizeGb: 1 });
    const times: number[] = [];
    for (let i = 0; i < ATTACHES; i++) {
      const t0 = performance.now();
      await call('attachVolume', { name: 'bench', volumeId: 'bench-vol', sizeGb: 1 });
      times.push(performance.now() - t0);
      await waitBlock(consoleSource, 'bench', 'vda');
      await call('detachVolume', { name: 'bench', volumeId: 'bench-vol' });
      await waitBlock(consoleSource, 'bench', '-');
    }
    const sorted = times.sort((a, b) => a - b);
    return { attaches: ATTACHES, attachP50Ms: round(percentile(sorted, 50)), attachP95Ms: round(percentile(sorted, 95)) };
  } finally {
    client.close();
    await agent.stop();
    const { killQemusUnder } = await import('../test/support/guest.js');
    killQemusUnder(agent.stateDir);
    await rm(agent.stateDir, { recursive: true, force: true });
    await rm(pool, { recursive: true, force: true });
  }
}

async function main() {
  const upload = await uploadFigures();
  say(`upload ${upload.uploadMB} MB: ${upload.uploadMBps} MB/s through the API, ${upload.copyMBps} MB/s plain copy, ratio ${upload.uploadRatio}`);
  const attach = process.env.BENCH_SKIP_QEMU ? undefined : await attachFigures();
  if (attach) say(`attach to a running QEMU guest: p50 ${attach.attachP50Ms} ms, p95 ${attach.attachP95Ms} ms over ${attach.attaches}`);
  if (json) process.stdout.write(JSON.stringify({ ...upload, ...attach }) + '\n');
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
