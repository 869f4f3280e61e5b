import { readFileSync } from 'node:fs';
import type { Caller } from '../../domain/identity.js';
import * as commands from '../../schema/commands/index.js';
import type { Runtime } from '../../server/runtime.js';

/**
 * An image made the way a user makes one: `createImage` (PUBLIC), then the file's bytes PUT to its upload
 * URL on a running API with `token`. Returns the image as the upload answered (ACTIVE, with its sha256).
 */
export async function uploadImage(
  rt: Runtime,
  caller: Caller,
  api: { url: string },
  token: string,
  file: string,
  name: string,
): Promise<{ id: string; checksum: string; sizeBytes: number }> {
  const { image, uploadUrl } = await commands.createImage(rt, caller, { name, format: 'qcow2', visibility: 'PUBLIC' });
  const res = await fetch(api.url.replace(/\/graphql$/, '') + uploadUrl, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}` },
    body: new Uint8Array(readFileSync(file)),
  });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`upload of ${file} answered ${res.status}: ${body}`);
  const saved = JSON.parse(body) as { status: string; checksum: string; sizeBytes: number };
  if (saved.status !== 'ACTIVE') throw new Error(`upload of ${file} left image ${image.id} ${saved.status}`);
  return { id: image.id, checksum: saved.checksum, sizeBytes: saved.sizeBytes };
}
