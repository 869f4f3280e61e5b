import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';

const { utils } = ssh2;

/** The fingerprint as `ssh-keygen -lf` and OpenSSH's prompts show it: SHA256 of the key blob, base64 without padding. */
export function sshFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The blob of an OpenSSH public or private key, for fingerprinting. */
export function publicKeyBlob(key: string | Buffer): Buffer {
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) throw parsed;
  const one = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!one) throw new Error('no key found');
  return one.getPublicSSH();
}

/**
 * The agent's host key: made once (ed25519, OpenSSH format) on first start and kept in the state dir,
 * so its fingerprint stays what the controller registered for this host.
 */
export async function loadOrCreateHostKey(stateDir: string): Promise<{ privateKey: string; fingerprint: string }> {
  const path = join(stateDir, 'ssh_host_ed25519_key');
  let privateKey: string;
  try {
    privateKey = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await mkdir(stateDir, { recursive: true });
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'stratus-hostagent' });
    // Written under a temporary name first: two agents racing on a fresh dir must not leave half a key.
    await writeFile(`${path}.tmp`, pair.private, { mode: 0o600 });
    await rename(`${path}.tmp`, path);
    await writeFile(`${path}.pub`, pair.public + '\n');
    privateKey = pair.private;
  }
  return { privateKey, fingerprint: sshFingerprint(publicKeyBlob(privateKey)) };
}
