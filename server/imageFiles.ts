import { randomUUID } from 'node:crypto';
import { HashingFileSink } from './hashingFileSink.js';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { StratusError } from '../domain/errors.js';
import { imageStream } from '../domain/events.js';
import { canSeeImage, decideImage, evolveImage, imageFold, requireImageWritable, type ImageCommand, type StoredImage } from '../domain/image.js';
import { Id } from '../domain/scalars.js';
import { readFolded } from '../activities/events.js';
import { authenticate, bearerToken } from '../schema/auth.js';
import { WrongExpectedVersion } from '../eventstore/index.js';
import { imageStore } from './imageStore.js';
import { componentLog } from './log.js';
import type { Runtime } from './runtime.js';

const log = componentLog('api.images');
const run = promisify(execFile);

const statusOf: Record<string, number> = { NOT_FOUND: 404, FORBIDDEN: 403, UNAUTHENTICATED: 401, CONFLICT: 409, BAD_USER_INPUT: 400 };

/** `/images/<id>/file`: the id, or undefined for any other path. */
export function imageFilePath(url: string | undefined): string | undefined {
  const m = /^\/images\/([^/?]+)\/file(\?.*)?$/.exec(url ?? '');
  return m && Id.safeParse(m[1]).success ? m[1] : undefined;
}

/**
 * Glance's image data API: `PUT` streams the bytes in, `GET` streams them out, both with the caller's
 * bearer token. Refusals answer with the contract's code in a JSON body (`{ code, message }`).
 */
export async function serveImageFile(rt: Runtime, id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const caller = await authenticate(rt, bearerToken(req.headers.authorization));
    if (!caller) throw new StratusError('UNAUTHENTICATED', 'a valid bearer token is required (Authorization: Bearer <token>)');
    const folded = await readFolded(rt, imageStream(id), imageFold);
    if (req.method === 'GET' || req.method === 'HEAD') {
      const image = folded.state;
      if (!image || !canSeeImage(caller, image)) throw new StratusError('NOT_FOUND', `image ${id} not found`);
      if (image.status !== 'ACTIVE' || !image.checksum) throw new StratusError('CONFLICT', `image ${id} is ${image.status}: it has no data yet`);
      const path = imageStore(rt).blobPath(image.checksum);
      const { size } = await stat(path);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size, 'x-image-checksum-sha256': image.checksum });
      if (req.method === 'HEAD') return void res.end();
      await pipeline(createReadStream(path), res);
      return;
    }
    if (req.method !== 'PUT') throw new StratusError('BAD_USER_INPUT', `${req.method} is not allowed here: PUT or GET`);
    const image = requireImageWritable(caller, folded.state, id);
    const saved = await receiveUpload(rt, image, folded.version, req, caller.tokenId);
    respond(res, 200, { id: saved.id, status: saved.status, checksum: saved.checksum, sizeBytes: saved.sizeBytes });
  } catch (e) {
    if (res.headersSent) return void res.destroy();
    if (e instanceof StratusError) return respond(res, statusOf[e.code] ?? 500, { code: e.code, message: e.message });
    log.error({ err: e, imageId: id }, 'image file request failed');
    respond(res, 500, { code: 'INTERNAL', message: 'internal error' });
  }
}

function respond(res: ServerResponse, status: number, body: unknown) {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify(body));
}

/**
 * The upload: SAVING recorded first (a concurrent second upload meets the stream version and is
 * refused), the bytes streamed to a temporary file while they are hashed, never held whole in memory;
 * then `qemu-img info` checks they are the claimed format and the file is renamed into the store under
 * its sha256. Whatever goes wrong, the temporary file goes: bad bytes leave the image ERROR with the
 * reason, an interrupted upload leaves it QUEUED for another try.
 */
async function receiveUpload(rt: Runtime, image: StoredImage, version: number, req: IncomingMessage, actor: string): Promise<StoredImage> {
  const uploadId = randomUUID();
  let current: StoredImage = image;
  /** Decides on the image as this upload last left it, and appends with that version expected. */
  const record = async (command: (at: string) => ImageCommand, expected: number) => {
    const events = decideImage(command(new Date().toISOString()), current);
    await rt.store.append(imageStream(image.id), events.map((e) => ({ id: randomUUID(), type: e.type, data: e.data, metadata: { actor } }) as never), {
      expectedVersion: expected,
    });
    current = events.reduce(evolveImage, current as StoredImage | null)!;
  };
  try {
    await record((at) => ({ type: 'startUpload', data: { uploadId, at } }), version);
  } catch (e) {
    if (e instanceof WrongExpectedVersion) throw new StratusError('CONFLICT', `image ${image.id} changed meanwhile (another upload?)`);
    throw e;
  }
  const store = imageStore(rt);
  await mkdir(store.tmpDir, { recursive: true });
  await mkdir(store.blobDir, { recursive: true });
  const tmp = join(store.tmpDir, `${image.id}-${uploadId}`);
  const sink = new HashingFileSink(tmp);
  let sizeBytes = 0;
  try {
    await pipeline(req, sink);
    sizeBytes = sink.bytes;
    // A client that declared a length and sent less went away half way, even if the stream ended cleanly.
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (req.aborted || (Number.isFinite(declared) && declared !== sizeBytes)) throw new Error(`got ${sizeBytes} of ${declared} bytes`);
  } catch (e) {
    await rm(tmp, { force: true });
    await record((at) => ({ type: 'abandonUpload', data: { uploadId, reason: (e as Error).message, at } }), version + 1);
    throw new StratusError('BAD_USER_INPUT', `the upload of image ${image.id} was interrupted: ${(e as Error).message}`);
  }
  const problem = await formatProblem(tmp, image.format);
  if (problem) {
    await rm(tmp, { force: true });
    await record((at) => ({ type: 'rejectUpload', data: { uploadId, reason: problem, at } }), version + 1);
    throw new StratusError('BAD_USER_INPUT', `image ${image.id}: ${problem}`);
  }
  const checksum = sink.checksum!;
  await store.takeIn(tmp, checksum);
  await record((at) => ({ type: 'finishUpload', data: { uploadId, checksum, sizeBytes, at } }), version + 1);
  return current;
}

/** Why the file is not an image of `format`, or null when it is (qemu-img's own detection decides). */
export async function formatProblem(path: string, format: string): Promise<string | null> {
  let info: { format?: string; 'backing-filename'?: string };
  try {
    info = JSON.parse((await run('qemu-img', ['info', '--output=json', path], { maxBuffer: 1 << 20 })).stdout) as typeof info;
  } catch (e) {
    return `qemu-img cannot read it: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`;
  }
  if (info.format !== format) return `the bytes are ${info.format ?? 'not an image'}, not ${format}`;
  // A backing file would make the host read a file of its own choosing: Glance refuses these too.
  if (info['backing-filename']) return 'a qcow2 with a backing file is not accepted';
  return null;
}
