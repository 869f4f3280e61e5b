/**
 * Storage figures, each against a baseline measured in the same run on the same disk:
 *
 * - uploadMBps: `curl -T` to `PUT /images/<id>/file` through the API (streamed, hashed, `qemu-img info`,
 *   renamed into the store) against copyMBps, a plain copy of the same file (`fs.copyFile`, what cp does);
 *   uploadRatio = uploadMBps / copyMBps (target >= 0.5). durableCopyMBps: the same copy followed by an
 *   fsync of the copy, since an upload is flushed to disk before its image turns ACTIVE and a plain copy
 *   is not (durableUploadRatio beside it; the target stays against the plain copy). The PUT path's parts are profiled beside it:
 *   sha256MBps (hashing the same file in one thread: what bound the upload while it hashed inline) and
 *   checkMs (`qemu-img info` of it, the format check before the rename into the store), and receiveMBps:
 *   the same `curl -T` to a bare node:http server in this process that only writes the body to a file
 *   (no hash, no check, no events): what HTTP on loopback alone allows here.
 * - attachP50Ms: attachVolume through the command layer (what the mutation calls) to a running QEMU
 *   guest (TCG) booted from an image uploaded through the API, from the request to IN_USE.
 *
 *   npm run bench:storage            figures as text
 *   npm run bench:storage -- --json  exactly one JSON line on stdout
 *
 * BENCH_UPLOAD_MB (default 512), BENCH_ATTACHES (default 10), BENCH_SKIP_QEMU=1 to leave attach out.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { startProjections } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { startApi } from '../server/api.js';
import { createRuntime } from '../server/runtime.js';
import { startTemporalDevServer } from '../server/temporalDevServer.js';
import { routeTemporalLogs } from '../server/temporalLogs.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';
import { buildTestGuest, killQemusUnder, waitBlock, waitBoots } from '../test/support/guest.js';
import { readFolded } from '../activities/events.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import { instanceStream, volumeStream } from '../domain/events.js';
import { instanceDecider } from '../domain/instance.js';
import { workflowIdOf } from '../domain/operation.js';
import { volumeDecider } from '../domain/volume.js';
import { startWorker } from '../server/worker.js';
import { startAgentProcess } from '../test/support/hostagent.js';

const json = process.argv.includes('--json');
const run = promisify(execFile);
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

/**
 * The upload as a client would make it: curl in its own process, so the client's reads and sends do not
 * share the API's event loop (one process doing both would halve what either could do).
 */
function curlPut(url: string, token: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-T', path, '-H', `Authorization: Bearer ${token}`, url], (e, stdout) =>
      e ? reject(e) : resolve(Number(stdout.trim())),
    );
  });
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

/** PostgreSQL, a Temporal dev server, the runtime, the projections, a worker and the API, on a temp dir. */
async function stackRuntime(name: string) {
  const pg = await startPostgres();
  const dir = await mkdtemp(join(tmpdir(), `stratus-bench-${name}-`));
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
  const worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
  const api = await startApi(rt, { port: 0 });
  const base = api.url.replace(/\/graphql$/, '');
  const stop = async () => {
    await api.close();
    await worker.shutdown();
    await projections.stop();
    await rt.close();
    await temporal.stop();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return { rt, dir, base, adminToken, stop };
}

async function uploadFigures() {
  const { rt, dir, base, adminToken, stop } = await stackRuntime('upload');
  try {
    const source = join(dir, 'source.raw');
    await makeFile(source, UPLOAD_MB);
    const { size } = await stat(source);
    const copies: number[] = [];
    const durableCopies: number[] = [];
    const uploads: number[] = [];
    for (let round_ = 0; round_ < 3; round_++) {
      const target = join(dir, `copy-${round_}.raw`);
      let t0 = performance.now();
      await copyFile(source, target);
      copies.push(performance.now() - t0);
      await rm(target);
      // The same copy made durable, as an upload must be before its image turns ACTIVE.
      t0 = performance.now();
      await copyFile(source, target);
      const copied = await open(target, 'r+');
      await copied.sync();
      await copied.close();
      durableCopies.push(performance.now() - t0);
      await rm(target);

      const { uploadUrl } = await commands.createImage(rt, bootstrapAdminCaller, { name: `bench-${round_}`, format: 'raw', visibility: 'PRIVATE' });
      t0 = performance.now();
      const status = await curlPut(base + uploadUrl, adminToken, source);
      uploads.push(performance.now() - t0);
      if (status !== 200) throw new Error(`upload answered ${status}`);
      // The same bytes land on the same content-addressed file: remove it so every round writes it anew.
      await rm(join(dir, 'images', 'sha256'), { recursive: true, force: true });
    }
    const mb = size / 2 ** 20;
    const copyMBps = mb / (median(copies) / 1000);
    const durableCopyMBps = mb / (median(durableCopies) / 1000);
    const uploadMBps = mb / (median(uploads) / 1000);
    let t0 = performance.now();
    const hash = createHash('sha256');
    await pipeline(createReadStream(source, { highWaterMark: 1 << 20 }), hash);
    const sha256MBps = mb / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    await run('qemu-img', ['info', '--output=json', source]);
    const checkMs = performance.now() - t0;
    const receives: number[] = [];
    const bare = createServer((req, res) => {
      pipeline(req, createWriteStream(join(dir, 'received.raw'), { highWaterMark: 1 << 20 })).then(() => res.end('ok'), (e: Error) => res.destroy(e));
    });
    await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', () => resolve()));
    for (let round_ = 0; round_ < 3; round_++) {
      t0 = performance.now();
      await curlPut(`http://127.0.0.1:${(bare.address() as { port: number }).port}/`, adminToken, source);
      receives.push(performance.now() - t0);
      await rm(join(dir, 'received.raw'), { force: true });
    }
    bare.close();
    const receiveMBps = mb / (median(receives) / 1000);
    return {
      uploadMB: round(mb, 0), copyMBps: round(copyMBps), uploadMBps: round(uploadMBps), uploadRatio: round(uploadMBps / copyMBps, 2),
      durableCopyMBps: round(durableCopyMBps), durableUploadRatio: round(uploadMBps / durableCopyMBps, 2),
      sha256MBps: round(sha256MBps), checkMs: round(checkMs), receiveMBps: round(receiveMBps),
    };
  } finally {
    await stop();
  }
}

/**
 * Attach through the whole stack: an image uploaded through the API boots on a qemu host, then a volume
 * is attached and detached ATTACHES times; each attach is timed from the command (what the mutation
 * calls) to IN_USE on the volume's stream.
 */
async function attachFigures() {
  const guest = buildTestGuest();
  const stack = await stackRuntime('attach');
  const { rt, base, adminToken } = stack;
  const agent = await startAgentProcess({
    driver: 'qemu',
    driverOptions: { accel: 'tcg', capacity: '4,4096,50' },
    authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')],
  });
  const client = agent.client({ privateKey: readFileSync(rt.config.sshKeyPath, 'utf8') });
  const consoleSource = { consoleLog: (name: string, opts: { lines: number }) => client.call('consoleLog', { name, lines: opts.lines }) };
  const caller = bootstrapAdminCaller;
  const done = async (operationId: string) => {
    await rt.temporal.workflow.getHandle(workflowIdOf(operationId)).result();
  };
  try {
    await commands.registerHost(rt, caller, { name: 'bench-qemu', address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
    const { image, uploadUrl } = await commands.createImage(rt, caller, { name: 'bench-guest', format: 'qcow2', visibility: 'PUBLIC' });
    const { size } = await stat(guest.diskImagePath);
    if ((await putFile(base + uploadUrl, adminToken, guest.diskImagePath, size)) !== 200) throw new Error('the guest image upload failed');
    const { flavor } = await commands.createFlavor(rt, caller, { name: 'bench.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 });
    const boot = await commands.bootInstance(rt, caller, { name: 'bench-guest', flavorId: flavor.id, imageId: image.id });
    await done(boot.operation.id);
    const instanceId = boot.instance!.id;
    const vm = vmNameOf((await readFolded(rt, instanceStream(instanceId), instanceDecider)).state!);
    await waitBoots(consoleSource, vm, 1, 180_000);
    const created = await commands.createVolume(rt, caller, { name: 'bench-vol', sizeGb: 1 });
    await done(created.operation.id);
    const times: number[] = [];
    for (let i = 0; i < ATTACHES; i++) {
      const t0 = performance.now();
      const attach = await commands.attachVolume(rt, caller, { instanceId, volumeId: created.volume.id });
      await done(attach.operation.id);
      times.push(performance.now() - t0);
      const { state } = await readFolded(rt, volumeStream(created.volume.id), volumeDecider);
      if (state?.state !== 'IN_USE') throw new Error(`attach ${i} left the volume ${state?.state}`);
      await waitBlock(consoleSource, vm, 'vda,vdb');
      await done((await commands.detachVolume(rt, caller, { instanceId, volumeId: created.volume.id })).operation.id);
      await waitBlock(consoleSource, vm, 'vda');
    }
    const sorted = times.sort((a, b) => a - b);
    return { attaches: ATTACHES, attachP50Ms: round(percentile(sorted, 50)), attachP95Ms: round(percentile(sorted, 95)) };
  } finally {
    client.close();
    await stack.stop();
    await agent.stop();
    killQemusUnder(agent.stateDir);
    await rm(agent.stateDir, { recursive: true, force: true });
  }
}

async function main() {
  routeTemporalLogs();
  const upload = await uploadFigures();
  say(`upload ${upload.uploadMB} MB: ${upload.uploadMBps} MB/s through the API, ${upload.copyMBps} MB/s plain copy, ratio ${upload.uploadRatio}`);
  say(`  against a copy flushed to disk (fsync, as an upload is): ${upload.durableCopyMBps} MB/s, ratio ${upload.durableUploadRatio}`);
  say(`  its parts: HTTP receive to a file alone ${upload.receiveMBps} MB/s, sha256 alone ${upload.sha256MBps} MB/s (one thread), qemu-img info ${upload.checkMs} ms`);
  const attach = process.env.BENCH_SKIP_QEMU ? undefined : await attachFigures();
  if (attach) say(`attach to a running QEMU guest: p50 ${attach.attachP50Ms} ms, p95 ${attach.attachP95Ms} ms over ${attach.attaches}`);
  if (json) process.stdout.write(JSON.stringify({ ...upload, ...attach }) + '\n');
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
